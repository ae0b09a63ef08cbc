//! Decoding the few storage values the client needs, through the type
//! information of the runtime's metadata (subxt's dynamic API), keeping only
//! the fields we use. A runtime upgrade that adds fields or reorders
//! unrelated ones does not break these.

use subxt::ext::scale_decode::DecodeAsType;
use subxt::ext::scale_type_resolver::TypeResolver;
use subxt::ext::scale_value::{Composite, Value, ValueDef};

/// `Commitments.CommitmentOf` value: `Registration { deposit, block, info }`.
#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "subxt::ext::scale_decode")]
struct Registration {
    block: u64,
    info: CommitmentInfo,
}

#[derive(Debug, DecodeAsType)]
#[decode_as_type(crate_path = "subxt::ext::scale_decode")]
struct CommitmentInfo {
    fields: Vec<Value>,
}

/// Why a commitment's storage value is not a usable raw string.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommitmentDecodeError {
    #[error("commitment value does not decode: {0}")]
    Scale(String),
    /// Decodes, but holds no field, or a first field that is not `RawN`
    /// (e.g. `Sha256`): `found` says what, for the miner.
    #[error("commitment at block {block} holds {found}, not raw bytes")]
    NotRaw { block: u64, found: String },
}

impl CommitmentDecodeError {
    /// The commitment's block, when the value decodes that far.
    pub fn block(&self) -> Option<u64> {
        match self {
            Self::Scale(_) => None,
            Self::NotRaw { block, .. } => Some(*block),
        }
    }

    /// What the commitment holds instead of raw bytes, as the miner is told.
    pub fn found(&self) -> String {
        match self {
            Self::Scale(_) => "a value that does not decode".into(),
            Self::NotRaw { found, .. } => found.clone(),
        }
    }
}

/// A decoded commitment: its block and the bytes of its first `Raw` field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedCommitment {
    pub block: u64,
    pub data: Vec<u8>,
}

/// Decodes a `CommitmentOf` value of type `type_id`. Never panics, whatever
/// the bytes (property-tested against the chain double's metadata).
pub fn decode_commitment<R: TypeResolver>(
    bytes: &[u8],
    type_id: R::TypeId,
    types: &R,
) -> Result<DecodedCommitment, CommitmentDecodeError> {
    let input = &mut &bytes[..];
    let registration = Registration::decode_as_type(input, type_id, types)
        .map_err(|e| CommitmentDecodeError::Scale(e.to_string()))?;
    if !input.is_empty() {
        return Err(CommitmentDecodeError::Scale(format!(
            "{} bytes left over",
            input.len()
        )));
    }
    let block = registration.block;
    let first = registration
        .info
        .fields
        .first()
        .ok_or_else(|| CommitmentDecodeError::NotRaw {
            block,
            found: "no field".into(),
        })?;
    let data = raw_bytes(first).map_err(|found| CommitmentDecodeError::NotRaw { block, found })?;
    Ok(DecodedCommitment { block, data })
}

/// The bytes of a `Data::RawN([u8; N])` value, or what the value is instead.
fn raw_bytes(value: &Value) -> Result<Vec<u8>, String> {
    let ValueDef::Variant(variant) = &value.value else {
        return Err("a field that is not a `Data` variant".into());
    };
    let not_raw = || format!("a `{}` field", variant.name);
    if !variant.name.starts_with("Raw") {
        return Err(not_raw());
    }
    let inner: Vec<&Value> = variant.values.values().collect();
    let [array] = inner[..] else {
        return Err(not_raw());
    };
    let ValueDef::Composite(Composite::Unnamed(items)) = &array.value else {
        return Err(not_raw());
    };
    items
        .iter()
        .map(|v| {
            v.as_u128()
                .and_then(|b| u8::try_from(b).ok())
                .ok_or_else(not_raw)
        })
        .collect()
}
