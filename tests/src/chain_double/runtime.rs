//! The double's runtime: the types of the pallets it mirrors, the metadata
//! built from them, storage keys, and the calls it applies with the checks of
//! subtensor that matter to a validator.
//!
//! Types derive `TypeInfo` so the metadata subxt reads describes exactly the
//! bytes the double encodes; names, variant indexes and field names follow
//! subtensor (pallet indexes are the double's own).

use std::collections::{BTreeMap, VecDeque};

use frame_metadata::v14::{
    PalletCallMetadata, PalletErrorMetadata, PalletEventMetadata, PalletStorageMetadata,
    StorageEntryMetadata, StorageEntryModifier, StorageEntryType, StorageHasher,
};
use frame_metadata::v15::{
    CustomMetadata, ExtrinsicMetadata, OuterEnums, PalletMetadata, RuntimeMetadataV15,
    SignedExtensionMetadata,
};
use frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed};
use parity_scale_codec::{Compact, Decode, Encode, Input, Output};
use scale_info::build::{Fields, Variants};
use scale_info::{MetaType, Path, Type, TypeInfo, meta_type};
use sp_crypto_hashing::{blake2_128, blake2_256, twox_64, twox_128};

pub const SPEC_VERSION: u32 = 300;
pub const TX_VERSION: u32 = 1;

pub const SYSTEM_INDEX: u8 = 0;
pub const TIMESTAMP_INDEX: u8 = 2;
pub const SUBTENSOR_INDEX: u8 = 7;
pub const COMMITMENTS_INDEX: u8 = 18;

/// `sp_core::crypto::AccountId32`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, TypeInfo)]
pub struct AccountId32(pub [u8; 32]);

/// `primitive_types::H256`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Encode, Decode, TypeInfo)]
pub struct H256(pub [u8; 32]);

/// `sp_runtime::MultiAddress<AccountId32, ()>` (the `Index` variant left out).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum MultiAddress {
    #[codec(index = 0)]
    Id(AccountId32),
    #[codec(index = 2)]
    Raw(Vec<u8>),
    #[codec(index = 3)]
    Address32([u8; 32]),
    #[codec(index = 4)]
    Address20([u8; 20]),
}

/// `sp_runtime::MultiSignature`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum MultiSignature {
    #[codec(index = 0)]
    Ed25519([u8; 64]),
    #[codec(index = 1)]
    Sr25519([u8; 64]),
    #[codec(index = 2)]
    Ecdsa([u8; 65]),
}

/// `sp_runtime::generic::Era`: byte 0 is immortal, otherwise two bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    Immortal,
    Mortal { period: u64, phase: u64 },
}

impl Era {
    /// The block whose hash the signature commits to, seen from `current`.
    pub fn birth(self, current: u64) -> u64 {
        match self {
            Era::Immortal => 0,
            Era::Mortal { period, phase } => (current.max(phase) - phase) / period * period + phase,
        }
    }

    pub fn death(self, current: u64) -> u64 {
        match self {
            Era::Immortal => u64::MAX,
            Era::Mortal { period, .. } => self.birth(current) + period,
        }
    }
}

impl Decode for Era {
    fn decode<I: Input>(input: &mut I) -> Result<Self, parity_scale_codec::Error> {
        let first = input.read_byte()?;
        if first == 0 {
            return Ok(Era::Immortal);
        }
        let encoded = u64::from(first) + (u64::from(input.read_byte()?) << 8);
        let period = 2 << (encoded % (1 << 4));
        let quantize_factor = (period >> 12).max(1);
        let phase = (encoded >> 4) * quantize_factor;
        if period >= 4 && phase < period {
            Ok(Era::Mortal { period, phase })
        } else {
            Err("invalid period and phase".into())
        }
    }
}

impl TypeInfo for Era {
    type Identity = Self;
    fn type_info() -> Type {
        let mut variants = Variants::new().variant_unit("Immortal", 0);
        for (i, name) in MORTAL_NAMES.iter().enumerate() {
            variants = variants.variant(*name, |v| {
                v.index(i as u8 + 1)
                    .fields(Fields::unnamed().field(|f| f.ty::<u8>()))
            });
        }
        Type::builder()
            .path(Path::new("Era", "sp_runtime::generic::era"))
            .variant(variants)
    }
}

static MORTAL_NAMES: std::sync::LazyLock<Vec<&'static str>> = std::sync::LazyLock::new(|| {
    (1..=255)
        .map(|i| &*Box::leak(format!("Mortal{i}").into_boxed_str()))
        .collect()
});

/// `CheckNonce` extra: the compact nonce.
#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub struct CheckNonce(#[codec(compact)] pub u32);

/// `ChargeTransactionPayment` extra: the compact tip.
#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub struct ChargeTransactionPayment(#[codec(compact)] pub u128);

/// An extension the client does not know and must skip because it encodes to
/// nothing, as subtensor's own extensions do.
#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub struct SubtensorTransactionExtension;

/// `pallet_commitments::Data`: tag 0 none, `1 + n` raw bytes of length n,
/// 130 and 131 hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    None,
    Raw(Vec<u8>),
    BlakeTwo256([u8; 32]),
    Sha256([u8; 32]),
}

impl Encode for Data {
    fn encode_to<T: Output + ?Sized>(&self, dest: &mut T) {
        match self {
            Data::None => dest.push_byte(0),
            Data::Raw(bytes) => {
                dest.push_byte(bytes.len() as u8 + 1);
                dest.write(bytes);
            }
            Data::BlakeTwo256(h) => {
                dest.push_byte(130);
                dest.write(h);
            }
            Data::Sha256(h) => {
                dest.push_byte(131);
                dest.write(h);
            }
        }
    }
}

impl Decode for Data {
    fn decode<I: Input>(input: &mut I) -> Result<Self, parity_scale_codec::Error> {
        let tag = input.read_byte()?;
        Ok(match tag {
            0 => Data::None,
            1..=129 => {
                let mut bytes = vec![0u8; usize::from(tag - 1)];
                input.read(&mut bytes)?;
                Data::Raw(bytes)
            }
            130 => {
                let mut h = [0u8; 32];
                input.read(&mut h)?;
                Data::BlakeTwo256(h)
            }
            131 => {
                let mut h = [0u8; 32];
                input.read(&mut h)?;
                Data::Sha256(h)
            }
            _ => return Err("unknown Data tag".into()),
        })
    }
}

macro_rules! raw_variants {
    ($v:expr; $($n:literal)*) => {{
        let mut v = $v;
        $( v = v.variant(concat!("Raw", stringify!($n)), |b| {
            b.index($n + 1).fields(Fields::unnamed().field(|f| f.ty::<[u8; $n]>()))
        }); )*
        v
    }};
}

impl TypeInfo for Data {
    type Identity = Self;
    fn type_info() -> Type {
        let variants = raw_variants!(Variants::new().variant_unit("None", 0);
            0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29
            30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56
            57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83
            84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107
            108 109 110 111 112 113 114 115 116 117 118 119 120 121 122 123 124 125 126 127 128);
        let variants = variants
            .variant("BlakeTwo256", |b| {
                b.index(130)
                    .fields(Fields::unnamed().field(|f| f.ty::<[u8; 32]>()))
            })
            .variant("Sha256", |b| {
                b.index(131)
                    .fields(Fields::unnamed().field(|f| f.ty::<[u8; 32]>()))
            });
        Type::builder()
            .path(Path::new("Data", "pallet_commitments::types"))
            .variant(variants)
    }
}

/// `pallet_commitments::CommitmentInfo`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct CommitmentInfo {
    pub fields: Vec<Data>,
}

/// `pallet_commitments::Registration`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub struct Registration {
    pub deposit: u64,
    pub block: u32,
    pub info: CommitmentInfo,
}

/// `pallet_subtensor::Call` (the calls a validator and a miner make).
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum SubtensorCall {
    #[codec(index = 0)]
    set_weights {
        netuid: u16,
        dests: Vec<u16>,
        weights: Vec<u16>,
        version_key: u64,
    },
    #[codec(index = 96)]
    commit_weights { netuid: u16, commit_hash: H256 },
    #[codec(index = 97)]
    reveal_weights {
        netuid: u16,
        uids: Vec<u16>,
        values: Vec<u16>,
        salt: Vec<u16>,
        version_key: u64,
    },
}

/// `pallet_commitments::Call`.
#[allow(non_camel_case_types)]
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum CommitmentsCall {
    #[codec(index = 0)]
    set_commitment {
        netuid: u16,
        info: Box<CommitmentInfo>,
    },
}

/// The outer call enum.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode, TypeInfo)]
pub enum RuntimeCall {
    #[codec(index = 7)]
    SubtensorModule(SubtensorCall),
    #[codec(index = 18)]
    Commitments(CommitmentsCall),
}

#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub struct Weight {
    #[codec(compact)]
    pub ref_time: u64,
    #[codec(compact)]
    pub proof_size: u64,
}

#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub enum DispatchClass {
    Normal,
    Operational,
    Mandatory,
}

#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub enum Pays {
    Yes,
    No,
}

#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub struct DispatchInfo {
    pub weight: Weight,
    pub class: DispatchClass,
    pub pays_fee: Pays,
}

impl DispatchInfo {
    fn normal() -> Self {
        Self {
            weight: Weight {
                ref_time: 1_000_000,
                proof_size: 0,
            },
            class: DispatchClass::Normal,
            pays_fee: Pays::Yes,
        }
    }
}

/// `sp_runtime::ModuleError`.
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub struct ModuleError {
    pub index: u8,
    pub error: [u8; 4],
}

impl TypeInfo for ModuleError {
    type Identity = Self;
    fn type_info() -> Type {
        Type::builder()
            .path(Path::new("ModuleError", "sp_runtime"))
            .composite(
                Fields::named()
                    .field(|f| f.ty::<u8>().name("index"))
                    .field(|f| f.ty::<[u8; 4]>().name("error")),
            )
    }
}

/// `sp_runtime::DispatchError` (the variants the double produces).
#[derive(Debug, Clone, PartialEq, Eq, Encode, Decode)]
pub enum DispatchError {
    #[codec(index = 0)]
    Other,
    #[codec(index = 2)]
    BadOrigin,
    #[codec(index = 3)]
    Module(ModuleError),
}

impl TypeInfo for DispatchError {
    type Identity = Self;
    fn type_info() -> Type {
        Type::builder()
            .path(Path::new("DispatchError", "sp_runtime"))
            .variant(
                Variants::new()
                    .variant_unit("Other", 0)
                    .variant_unit("CannotLookup", 1)
                    .variant_unit("BadOrigin", 2)
                    .variant("Module", |v| {
                        v.index(3)
                            .fields(Fields::unnamed().field(|f| f.ty::<ModuleError>()))
                    }),
            )
    }
}

/// `frame_system::Event`.
#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub enum SystemEvent {
    ExtrinsicSuccess {
        dispatch_info: DispatchInfo,
    },
    ExtrinsicFailed {
        dispatch_error: DispatchError,
        dispatch_info: DispatchInfo,
    },
}

#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub enum SubtensorEvent {
    WeightsSet(u16, u16),
    CRV3WeightsCommitted(AccountId32, u16, H256),
    WeightsCommitted(AccountId32, u16, H256),
    WeightsRevealed(AccountId32, u16, H256),
}

#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub enum CommitmentsEvent {
    Commitment { netuid: u16, who: AccountId32 },
}

#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub enum RuntimeEvent {
    #[codec(index = 0)]
    System(SystemEvent),
    #[codec(index = 7)]
    SubtensorModule(SubtensorEvent),
    #[codec(index = 18)]
    Commitments(CommitmentsEvent),
}

#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub enum Phase {
    ApplyExtrinsic(u32),
    Finalization,
    Initialization,
}

#[derive(Debug, Clone, Encode, Decode, TypeInfo)]
pub struct EventRecord {
    pub phase: Phase,
    pub event: RuntimeEvent,
    pub topics: Vec<H256>,
}

/// `pallet_subtensor::Error` (the subset the double raises; indexes are its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, TypeInfo)]
pub enum SubtensorError {
    SubNetworkDoesNotExist,
    HotKeyNotRegisteredInSubNet,
    NeuronNoValidatorPermit,
    WeightVecNotEqualSize,
    DuplicateUids,
    UidVecContainInvalidOne,
    IncorrectWeightVersionKey,
    SettingWeightsTooFast,
    CommittingWeightsTooFast,
    CommitRevealEnabled,
    CommitRevealDisabled,
    NoWeightsCommitFound,
    InvalidRevealCommitHashNotMatch,
    RevealTooEarly,
    ExpiredWeightCommit,
    TooManyUnrevealedCommits,
}

/// `pallet_commitments::Error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, TypeInfo)]
pub enum CommitmentsError {
    TooManyFieldsInCommitmentInfo,
    AccountNotAllowedCommit,
    CommitmentSetRateLimitExceeded,
}

impl From<SubtensorError> for DispatchError {
    fn from(e: SubtensorError) -> Self {
        DispatchError::Module(ModuleError {
            index: SUBTENSOR_INDEX,
            error: [e as u8, 0, 0, 0],
        })
    }
}

impl From<CommitmentsError> for DispatchError {
    fn from(e: CommitmentsError) -> Self {
        DispatchError::Module(ModuleError {
            index: COMMITMENTS_INDEX,
            error: [e as u8, 0, 0, 0],
        })
    }
}

/// The outer error enum.
#[derive(Debug, Clone, TypeInfo)]
pub enum RuntimeError {
    #[codec(index = 7)]
    SubtensorModule(SubtensorError),
    #[codec(index = 18)]
    Commitments(CommitmentsError),
}

/// Stands for the runtime in the metadata.
#[derive(Debug, TypeInfo)]
pub struct Runtime;

type Extra = (
    (),
    (),
    (),
    (),
    Era,
    CheckNonce,
    (),
    ChargeTransactionPayment,
    SubtensorTransactionExtension,
);

fn storage_entry(
    name: &'static str,
    hashers: Vec<StorageHasher>,
    key: MetaType,
    value: MetaType,
    default: Vec<u8>,
) -> StorageEntryMetadata {
    let (modifier, ty) = if hashers.is_empty() {
        (
            StorageEntryModifier::Default,
            StorageEntryType::Plain(value),
        )
    } else {
        (
            StorageEntryModifier::Default,
            StorageEntryType::Map {
                hashers,
                key,
                value,
            },
        )
    };
    StorageEntryMetadata {
        name,
        modifier,
        ty,
        default,
        docs: vec![],
    }
}

fn optional_entry(
    name: &'static str,
    hashers: Vec<StorageHasher>,
    key: MetaType,
    value: MetaType,
) -> StorageEntryMetadata {
    let mut entry = storage_entry(name, hashers, key, value, vec![0]);
    entry.modifier = StorageEntryModifier::Optional;
    entry
}

/// A pallet whose storage prefix is its name; `calls`, `event` and `error` are the types of
/// its enums, for the pallets that have them.
fn pallet(
    name: &'static str,
    index: u8,
    entries: Vec<StorageEntryMetadata>,
    calls: Option<MetaType>,
    event: Option<MetaType>,
    error: Option<MetaType>,
) -> PalletMetadata {
    PalletMetadata {
        name,
        storage: Some(PalletStorageMetadata {
            prefix: name,
            entries,
        }),
        calls: calls.map(|ty| PalletCallMetadata { ty }),
        event: event.map(|ty| PalletEventMetadata { ty }),
        constants: vec![],
        error: error.map(|ty| PalletErrorMetadata { ty }),
        index,
        docs: vec![],
    }
}

/// The runtime metadata (V15) the double serves, SCALE-encoded with its prefix.
pub fn metadata_bytes() -> Vec<u8> {
    use StorageHasher::{Blake2_128Concat, Identity, Twox64Concat};
    let netuid = meta_type::<u16>();
    let system = pallet(
        "System",
        SYSTEM_INDEX,
        vec![
            storage_entry("Number", vec![], netuid, meta_type::<u32>(), 0u32.encode()),
            storage_entry(
                "Events",
                vec![],
                netuid,
                meta_type::<Vec<EventRecord>>(),
                vec![0],
            ),
        ],
        None,
        Some(meta_type::<SystemEvent>()),
        None,
    );
    let timestamp = pallet(
        "Timestamp",
        TIMESTAMP_INDEX,
        vec![storage_entry(
            "Now",
            vec![],
            netuid,
            meta_type::<u64>(),
            0u64.encode(),
        )],
        None,
        None,
        None,
    );
    let by_netuid = |name, value: MetaType, default: Vec<u8>| {
        storage_entry(name, vec![Identity], netuid, value, default)
    };
    let by_netuid_uid = |name, value: MetaType, default: Vec<u8>| {
        storage_entry(
            name,
            vec![Identity, Identity],
            meta_type::<(u16, u16)>(),
            value,
            default,
        )
    };
    let subtensor = pallet(
        "SubtensorModule",
        SUBTENSOR_INDEX,
        vec![
            by_netuid("SubnetworkN", meta_type::<u16>(), 0u16.encode()),
            by_netuid("Tempo", meta_type::<u16>(), 360u16.encode()),
            by_netuid("ValidatorPermit", meta_type::<Vec<bool>>(), vec![0]),
            by_netuid("LastUpdate", meta_type::<Vec<u64>>(), vec![0]),
            by_netuid("WeightsSetRateLimit", meta_type::<u64>(), 100u64.encode()),
            by_netuid(
                "CommitRevealWeightsEnabled",
                meta_type::<bool>(),
                false.encode(),
            ),
            by_netuid("RevealPeriodEpochs", meta_type::<u64>(), 1u64.encode()),
            by_netuid("WeightsVersionKey", meta_type::<u64>(), 0u64.encode()),
            by_netuid_uid("Keys", meta_type::<AccountId32>(), [0u8; 32].encode()),
            by_netuid_uid("BlockAtRegistration", meta_type::<u64>(), 0u64.encode()),
            by_netuid_uid("Weights", meta_type::<Vec<(u16, u16)>>(), vec![0]),
            optional_entry(
                "Uids",
                vec![Identity, Blake2_128Concat],
                meta_type::<(u16, AccountId32)>(),
                meta_type::<u16>(),
            ),
            optional_entry(
                "WeightCommits",
                vec![Twox64Concat, Twox64Concat],
                meta_type::<(u16, AccountId32)>(),
                meta_type::<VecDeque<(H256, u64, u64, u64)>>(),
            ),
        ],
        Some(meta_type::<SubtensorCall>()),
        Some(meta_type::<SubtensorEvent>()),
        Some(meta_type::<SubtensorError>()),
    );
    let commitments = pallet(
        "Commitments",
        COMMITMENTS_INDEX,
        vec![optional_entry(
            "CommitmentOf",
            vec![Identity, Twox64Concat],
            meta_type::<(u16, AccountId32)>(),
            meta_type::<Registration>(),
        )],
        Some(meta_type::<CommitmentsCall>()),
        Some(meta_type::<CommitmentsEvent>()),
        Some(meta_type::<CommitmentsError>()),
    );
    let ext = |identifier, ty, additional_signed| SignedExtensionMetadata {
        identifier,
        ty,
        additional_signed,
    };
    let extrinsic = ExtrinsicMetadata {
        version: 4,
        address_ty: meta_type::<MultiAddress>(),
        call_ty: meta_type::<RuntimeCall>(),
        signature_ty: meta_type::<MultiSignature>(),
        extra_ty: meta_type::<Extra>(),
        signed_extensions: vec![
            ext("CheckNonZeroSender", meta_type::<()>(), meta_type::<()>()),
            ext("CheckSpecVersion", meta_type::<()>(), meta_type::<u32>()),
            ext("CheckTxVersion", meta_type::<()>(), meta_type::<u32>()),
            ext("CheckGenesis", meta_type::<()>(), meta_type::<H256>()),
            ext("CheckMortality", meta_type::<Era>(), meta_type::<H256>()),
            ext("CheckNonce", meta_type::<CheckNonce>(), meta_type::<()>()),
            ext("CheckWeight", meta_type::<()>(), meta_type::<()>()),
            ext(
                "ChargeTransactionPayment",
                meta_type::<ChargeTransactionPayment>(),
                meta_type::<()>(),
            ),
            ext(
                "SubtensorTransactionExtension",
                meta_type::<SubtensorTransactionExtension>(),
                meta_type::<()>(),
            ),
        ],
    };
    let metadata = RuntimeMetadataV15::new(
        vec![system, timestamp, subtensor, commitments],
        extrinsic,
        meta_type::<Runtime>(),
        vec![],
        OuterEnums {
            call_enum_ty: meta_type::<RuntimeCall>(),
            event_enum_ty: meta_type::<RuntimeEvent>(),
            error_enum_ty: meta_type::<RuntimeError>(),
        },
        CustomMetadata {
            map: BTreeMap::new(),
        },
    );
    RuntimeMetadataPrefixed(
        frame_metadata::META_RESERVED,
        RuntimeMetadata::V15(metadata),
    )
    .encode()
}

/// Storage key helpers (the hashers subtensor's entries use).
pub mod keys {
    use super::*;

    pub fn prefix(pallet: &str, entry: &str) -> Vec<u8> {
        let mut key = twox_128(pallet.as_bytes()).to_vec();
        key.extend_from_slice(&twox_128(entry.as_bytes()));
        key
    }

    pub fn identity(key: &mut Vec<u8>, part: &impl Encode) {
        key.extend(part.encode());
    }

    pub fn twox64_concat(key: &mut Vec<u8>, part: &impl Encode) {
        let encoded = part.encode();
        key.extend_from_slice(&twox_64(&encoded));
        key.extend(encoded);
    }

    pub fn blake2_128_concat(key: &mut Vec<u8>, part: &impl Encode) {
        let encoded = part.encode();
        key.extend_from_slice(&blake2_128(&encoded));
        key.extend(encoded);
    }

    pub fn events() -> Vec<u8> {
        prefix("System", "Events")
    }
}

/// The v2 commit hash: blake2_256 of SCALE(account, netuid, uids, values, salt, version_key).
pub fn commit_hash(
    who: &AccountId32,
    netuid: u16,
    uids: &[u16],
    values: &[u16],
    salt: &[u16],
    version_key: u64,
) -> H256 {
    H256(blake2_256(
        &(who, netuid, uids, values, salt, version_key).encode(),
    ))
}

/// Scales weights so the largest is `u16::MAX`, truncating, as subtensor's
/// `max_upscale_to_u16` does.
pub fn max_upscale_to_u16(values: &[u16]) -> Vec<u16> {
    let max = values.iter().copied().max().unwrap_or(0);
    if max == 0 || max == u16::MAX {
        return values.to_vec();
    }
    values
        .iter()
        .map(|&v| (u64::from(v) * u64::from(u16::MAX) / u64::from(max)) as u16)
        .collect()
}

/// A decoded signed extrinsic (format v4).
#[derive(Debug, Clone)]
pub struct SignedExtrinsic {
    pub signer: AccountId32,
    pub signature: MultiSignature,
    pub era: Era,
    pub nonce: u32,
    /// `extra` bytes as signed (era, nonce, tip).
    pub extra: Vec<u8>,
    pub call_bytes: Vec<u8>,
    pub call: RuntimeCall,
}

/// Decodes an opaque extrinsic (`Vec<u8>` with its compact length).
pub fn decode_extrinsic(bytes: &[u8]) -> Result<SignedExtrinsic, String> {
    let input = &mut &bytes[..];
    let len = Compact::<u32>::decode(input).map_err(|e| e.to_string())?.0 as usize;
    if input.len() != len {
        return Err("extrinsic length prefix does not match".into());
    }
    let version = u8::decode(input).map_err(|e| e.to_string())?;
    if version != 0x84 {
        return Err(format!(
            "only signed v4 extrinsics are accepted, got {version:#x}"
        ));
    }
    let address = MultiAddress::decode(input).map_err(|e| format!("address: {e}"))?;
    let MultiAddress::Id(signer) = address else {
        return Err("only MultiAddress::Id signers are accepted".into());
    };
    let signature = MultiSignature::decode(input).map_err(|e| format!("signature: {e}"))?;
    let extra_start = bytes.len() - input.len();
    let era = Era::decode(input).map_err(|e| format!("era: {e}"))?;
    let nonce = CheckNonce::decode(input)
        .map_err(|e| format!("nonce: {e}"))?
        .0;
    let _tip = ChargeTransactionPayment::decode(input).map_err(|e| format!("tip: {e}"))?;
    let extra_end = bytes.len() - input.len();
    let extra = bytes[extra_start..extra_end].to_vec();
    let call_bytes = input.to_vec();
    let call = RuntimeCall::decode(&mut &call_bytes[..]).map_err(|e| format!("call: {e}"))?;
    Ok(SignedExtrinsic {
        signer,
        signature,
        era,
        nonce,
        extra,
        call_bytes,
        call,
    })
}

/// The bytes an extrinsic's signature covers.
pub fn signer_payload(ext: &SignedExtrinsic, genesis: &H256, birth_hash: &H256) -> Vec<u8> {
    let mut payload = ext.call_bytes.clone();
    payload.extend_from_slice(&ext.extra);
    payload.extend(SPEC_VERSION.encode());
    payload.extend(TX_VERSION.encode());
    payload.extend_from_slice(&genesis.0);
    payload.extend_from_slice(&birth_hash.0);
    if payload.len() > 256 {
        blake2_256(&payload).to_vec()
    } else {
        payload
    }
}

/// Events of one applied extrinsic.
pub fn extrinsic_events(
    index: u32,
    outcome: &Result<Vec<RuntimeEvent>, DispatchError>,
) -> Vec<EventRecord> {
    let record = |event| EventRecord {
        phase: Phase::ApplyExtrinsic(index),
        event,
        topics: vec![],
    };
    match outcome {
        Ok(events) => {
            let mut records: Vec<EventRecord> = events.iter().cloned().map(record).collect();
            records.push(record(RuntimeEvent::System(
                SystemEvent::ExtrinsicSuccess {
                    dispatch_info: DispatchInfo::normal(),
                },
            )));
            records
        }
        Err(e) => vec![record(RuntimeEvent::System(SystemEvent::ExtrinsicFailed {
            dispatch_error: e.clone(),
            dispatch_info: DispatchInfo::normal(),
        }))],
    }
}

/// `common`'s commitment decoder on the double's own metadata.
#[cfg(test)]
mod tests {
    use super::metadata_bytes;
    use frame_metadata::RuntimeMetadata;
    use frame_metadata::v14::StorageEntryType;
    use parity_scale_codec::Decode;
    use proptest::prelude::*;
    use scale_info::PortableRegistry;

    use common::chain::subtensor::decode::decode_commitment;

    /// The double's `CommitmentOf` value type and its registry.
    fn registration_type() -> (u32, PortableRegistry) {
        let prefixed =
            frame_metadata::RuntimeMetadataPrefixed::decode(&mut &metadata_bytes()[..]).unwrap();
        let RuntimeMetadata::V15(m) = prefixed.1 else {
            panic!("v15 expected")
        };
        let pallet = m.pallets.iter().find(|p| p.name == "Commitments").unwrap();
        let entry = pallet
            .storage
            .as_ref()
            .unwrap()
            .entries
            .iter()
            .find(|e| e.name == "CommitmentOf")
            .unwrap();
        let StorageEntryType::Map { value, .. } = &entry.ty else {
            panic!("map expected")
        };
        (value.id, m.types)
    }

    #[test]
    fn a_raw_commitment_decodes() {
        let (ty, types) = registration_type();
        let mut bytes = 5u64.to_le_bytes().to_vec(); // deposit
        bytes.extend(1234u32.to_le_bytes()); // block
        bytes.push(4); // one field (compact 1)
        bytes.push(1 + 3); // Raw3
        bytes.extend(b"a:b");
        let decoded = decode_commitment(&bytes, ty, &types).unwrap();
        assert_eq!(decoded.block, 1234);
        assert_eq!(decoded.data, b"a:b");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let (ty, types) = registration_type();
            let _ = decode_commitment(&bytes, ty, &types);
        }

        #[test]
        fn arbitrary_raw_data_round_trips(data in proptest::collection::vec(any::<u8>(), 0..=128), block in any::<u32>()) {
            let (ty, types) = registration_type();
            let mut bytes = 0u64.to_le_bytes().to_vec();
            bytes.extend(block.to_le_bytes());
            bytes.push(4);
            bytes.push(data.len() as u8 + 1);
            bytes.extend(&data);
            let decoded = decode_commitment(&bytes, ty, &types).unwrap();
            prop_assert_eq!(decoded.block, u64::from(block));
            prop_assert_eq!(decoded.data, data);
        }
    }
}
