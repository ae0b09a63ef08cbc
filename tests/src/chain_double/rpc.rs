//! The double's JSON-RPC methods: the legacy Substrate RPC subset subxt uses,
//! plus `double_*` control methods for tests in another process.

use std::net::SocketAddr;
use std::sync::Arc;

use jsonrpsee::server::{RpcModule, Server, ServerHandle};
use jsonrpsee::types::{ErrorObjectOwned, Params};
use parity_scale_codec::{Decode, Encode};
use serde_json::{Value, json};

use super::runtime::{self, AccountId32, H256};
use super::{Block, Shared, State, hex0x};

type RpcResult<T> = Result<T, ErrorObjectOwned>;

fn err(message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-32602, message.into(), None::<()>)
}

fn parse_hex(text: &str) -> RpcResult<Vec<u8>> {
    hex::decode(text.trim_start_matches("0x")).map_err(|e| err(format!("bad hex: {e}")))
}

fn parse_hash(value: Option<Value>) -> RpcResult<Option<H256>> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => {
            let bytes = parse_hex(&s)?;
            let arr: [u8; 32] = bytes.try_into().map_err(|_| err("hash must be 32 bytes"))?;
            Ok(Some(H256(arr)))
        }
        Some(other) => Err(err(format!("bad hash {other}"))),
    }
}

fn parse_number(value: &Value) -> RpcResult<u64> {
    match value {
        Value::Number(n) => n.as_u64().ok_or_else(|| err("bad block number")),
        Value::String(s) => {
            u64::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|_| err("bad block number"))
        }
        _ => Err(err("bad block number")),
    }
}

fn account(text: &str) -> RpcResult<[u8; 32]> {
    if let Ok(bytes) = parse_hex(text)
        && let Ok(arr) = <[u8; 32]>::try_from(bytes)
    {
        return Ok(arr);
    }
    let id: subxt::utils::AccountId32 = text.parse().map_err(|_| err("bad account"))?;
    Ok(id.0)
}

/// The block a request names (`None`: the best block).
fn at(state: &State, hash: Option<H256>) -> RpcResult<&Block> {
    match hash {
        None => Ok(state.best()),
        Some(h) => state
            .block_by_hash(&h)
            .ok_or_else(|| err(format!("unknown block {}", hex0x(&h.0)))),
    }
}

fn state_call(state: &State, method: &str, data: &[u8]) -> RpcResult<Vec<u8>> {
    Ok(match method {
        "Core_version" => (
            "node-subtensor".to_owned(),
            "chain-double".to_owned(),
            1u32,
            runtime::SPEC_VERSION,
            1u32,
            Vec::<([u8; 8], u32)>::new(),
            runtime::TX_VERSION,
            1u8,
        )
            .encode(),
        "Metadata_metadata_versions" => vec![14u32, 15u32].encode(),
        "Metadata_metadata_at_version" => {
            let version = u32::decode(&mut &data[..]).map_err(|e| err(e.to_string()))?;
            if version == 15 {
                Some(runtime::metadata_bytes()).encode()
            } else {
                None::<Vec<u8>>.encode()
            }
        }
        "Metadata_metadata" => runtime::metadata_bytes().encode(),
        "AccountNonceApi_account_nonce" => {
            let who = AccountId32::decode(&mut &data[..]).map_err(|e| err(e.to_string()))?;
            state.nonces.get(&who).copied().unwrap_or(0).encode()
        }
        other => {
            return Err(err(format!(
                "runtime api {other} is not provided by the double"
            )));
        }
    })
}

/// Registers a request/response method on `m`; every method here answers JSON.
fn method(
    m: &mut RpcModule<Arc<Shared>>,
    name: &'static str,
    f: impl Fn(Params, &Arc<Shared>) -> RpcResult<Value> + Send + Sync + Clone + 'static,
) {
    m.register_method(name, move |params, shared, _| f(params, shared))
        .expect("method names are unique");
}

/// Builds the RPC module over `shared`.
pub fn module(shared: Arc<Shared>) -> RpcModule<Arc<Shared>> {
    let mut m = RpcModule::new(shared);

    method(&mut m, "rpc_methods", |_, _| {
        Ok(json!({ "methods": [
            "chain_getBlockHash", "chain_getHeader", "chain_getBlock", "chain_getFinalizedHead",
            "chain_subscribeFinalizedHeads", "chain_subscribeNewHeads", "chain_subscribeAllHeads",
            "state_getStorage", "state_getKeysPaged", "state_queryStorageAt", "state_call",
            "state_getRuntimeVersion", "system_accountNextIndex", "author_submitAndWatchExtrinsic"
        ]}))
    });

    method(&mut m, "chain_getBlockHash", |params, shared| {
        let mut seq = params.sequence();
        let value: Option<Value> = seq.optional_next()?;
        let state = shared.lock();
        let block = match value {
            None | Some(Value::Null) => Some(state.best()),
            Some(v) => state.block_by_number(parse_number(&v)?),
        };
        Ok(block.map_or(Value::Null, |b| json!(hex0x(&b.hash.0))))
    });

    method(&mut m, "chain_getFinalizedHead", |_, shared| {
        Ok(json!(hex0x(&shared.lock().best().hash.0)))
    });

    method(&mut m, "chain_getHeader", |params, shared| {
        let mut seq = params.sequence();
        let hash = parse_hash(seq.optional_next()?)?;
        let state = shared.lock();
        Ok(match hash {
            None => state.best().header_json(),
            Some(h) => state
                .block_by_hash(&h)
                .map_or(Value::Null, Block::header_json),
        })
    });

    method(&mut m, "chain_getBlock", |params, shared| {
        let mut seq = params.sequence();
        let hash = parse_hash(seq.optional_next()?)?;
        let state = shared.lock();
        let block = match hash {
            None => Some(state.best()),
            Some(h) => state.block_by_hash(&h),
        };
        Ok(block.map_or(Value::Null, |b| {
            json!({
                "block": {
                    "header": b.header_json(),
                    "extrinsics": b.extrinsics.iter().map(|e| hex0x(e)).collect::<Vec<_>>(),
                },
                "justifications": null,
            })
        }))
    });

    method(&mut m, "state_getRuntimeVersion", |_, _| {
        Ok(json!({
            "specName": "node-subtensor",
            "implName": "chain-double",
            "authoringVersion": 1,
            "specVersion": runtime::SPEC_VERSION,
            "implVersion": 1,
            "apis": [],
            "transactionVersion": runtime::TX_VERSION,
            "stateVersion": 1,
        }))
    });

    method(&mut m, "state_getStorage", |params, shared| {
        let mut seq = params.sequence();
        let key: String = seq.next()?;
        let key = parse_hex(&key)?;
        let hash = parse_hash(seq.optional_next()?)?;
        let state = shared.lock();
        let block = at(&state, hash)?;
        Ok(state
            .storage_at(&key, Some(block))
            .map_or(Value::Null, |v| json!(hex0x(&v))))
    });

    method(&mut m, "state_getKeysPaged", |params, shared| {
        let mut seq = params.sequence();
        let prefix = parse_hex(&seq.next::<String>()?)?;
        let count: u32 = seq.next()?;
        let start: Option<String> = seq.optional_next()?;
        let start = start.map(|s| parse_hex(&s)).transpose()?;
        let hash = parse_hash(seq.optional_next()?)?;
        let state = shared.lock();
        at(&state, hash)?;
        let keys: Vec<String> = state
            .storage()
            .into_keys()
            .filter(|k| k.starts_with(&prefix))
            .filter(|k| start.as_ref().is_none_or(|s| k > s))
            .take(count as usize)
            .map(|k| hex0x(&k))
            .collect();
        Ok(json!(keys))
    });

    method(&mut m, "state_queryStorageAt", |params, shared| {
        let mut seq = params.sequence();
        let keys: Vec<String> = seq.next()?;
        let hash = parse_hash(seq.optional_next()?)?;
        let state = shared.lock();
        let block = at(&state, hash)?;
        let mut changes = Vec::new();
        for key in keys {
            let raw = parse_hex(&key)?;
            let value = state.storage_at(&raw, Some(block)).map(|v| hex0x(&v));
            changes.push(json!([key, value]));
        }
        Ok(json!([{ "block": hex0x(&block.hash.0), "changes": changes }]))
    });

    method(&mut m, "state_call", |params, shared| {
        let mut seq = params.sequence();
        let method: String = seq.next()?;
        let data: String = seq.next()?;
        let data = parse_hex(&data)?;
        let hash = parse_hash(seq.optional_next()?)?;
        let state = shared.lock();
        at(&state, hash)?;
        Ok(json!(hex0x(&state_call(&state, &method, &data)?)))
    });

    method(&mut m, "system_accountNextIndex", |params, shared| {
        let who: String = params.one()?;
        let who = AccountId32(account(&who)?);
        Ok(json!(shared.lock().nonces.get(&who).copied().unwrap_or(0)))
    });

    for (sub, notif, unsub) in [
        (
            "chain_subscribeFinalizedHeads",
            "chain_finalizedHead",
            "chain_unsubscribeFinalizedHeads",
        ),
        (
            "chain_subscribeNewHeads",
            "chain_newHead",
            "chain_unsubscribeNewHeads",
        ),
        (
            "chain_subscribeAllHeads",
            "chain_allHead",
            "chain_unsubscribeAllHeads",
        ),
    ] {
        m.register_subscription(
            sub,
            notif,
            unsub,
            |_params, pending, shared, _| async move {
                let mut heads = shared.subscribe_heads();
                let current = shared.lock().best().header_json();
                let Ok(sink) = pending.accept().await else {
                    return;
                };
                let send = |v: &Value| serde_json::value::to_raw_value(v).expect("json");
                if sink.send(send(&current)).await.is_err() {
                    return;
                }
                loop {
                    tokio::select! {
                        () = sink.closed() => return,
                        head = heads.recv() => match head {
                            Ok(head) => if sink.send(send(&head)).await.is_err() { return },
                            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                            Err(_) => return,
                        },
                    }
                }
            },
        )
        .expect("method names are unique");
    }

    m.register_subscription(
        "author_submitAndWatchExtrinsic",
        "author_extrinsicUpdate",
        "author_unwatchExtrinsic",
        |params, pending, shared, _| async move {
            let bytes = match params.one::<String>().map(|s| parse_hex(&s)) {
                Ok(Ok(bytes)) => bytes,
                Ok(Err(e)) | Err(e) => {
                    pending.reject(e).await;
                    return;
                }
            };
            let outcome = shared.mutate(|s| s.submit(&bytes));
            let hash = match outcome {
                Ok(hash) => hash,
                Err(message) => {
                    tracing::info!(%message, "chain double: extrinsic refused by the pool");
                    pending
                        .reject(ErrorObjectOwned::owned(
                            1010,
                            "Invalid Transaction",
                            Some(message),
                        ))
                        .await;
                    return;
                }
            };
            let Ok(sink) = pending.accept().await else {
                return;
            };
            let h = hex0x(&hash.0);
            for status in [
                json!("ready"),
                json!({ "inBlock": h }),
                json!({ "finalized": h }),
            ] {
                let raw = serde_json::value::to_raw_value(&status).expect("json");
                if sink.send(raw).await.is_err() {
                    return;
                }
            }
        },
    )
    .expect("method names are unique");

    // Control methods for tests in another process.
    method(&mut m, "double_register", |params, shared| {
        let mut seq = params.sequence();
        let who = account(&seq.next::<String>()?)?;
        let permit: bool = seq.optional_next()?.unwrap_or(false);
        Ok(json!(
            shared.mutate(|s| s.register(AccountId32(who), permit))
        ))
    });
    method(&mut m, "double_advance", |params, shared| {
        let n: u64 = params.one()?;
        Ok(json!(shared.mutate(|s| {
            for _ in 0..n {
                s.push_block(Vec::new(), Vec::new());
            }
            s.block_number()
        })))
    });
    method(&mut m, "double_block", |_, shared| {
        Ok(json!(shared.lock().block_number()))
    });
    method(&mut m, "double_setCommitment", |params, shared| {
        let mut seq = params.sequence();
        let who = account(&seq.next::<String>()?)?;
        let data: String = seq.next()?;
        let block: Option<u64> = seq.optional_next()?;
        shared.mutate(|s| {
            let block = block.unwrap_or_else(|| s.block_number());
            s.set_commitment(AccountId32(who), data.as_bytes(), block);
        });
        Ok(Value::Null)
    });
    // `double_set<Field>`: parses the one parameter as `$ty` and stores it with `$set`.
    macro_rules! setter {
        ($name:literal, |$s:ident, $v:ident: $ty:ty| $set:expr) => {
            method(&mut m, $name, |params, shared| {
                let $v: $ty = params.one()?;
                shared.mutate(|$s| $set);
                Ok(Value::Null)
            })
        };
    }
    setter!("double_setCommitReveal", |s, on: bool| s.commit_reveal = on);
    setter!("double_setRateLimit", |s, n: u64| s.rate_limit = n);
    setter!("double_setTempo", |s, n: u16| s.tempo = n);
    method(&mut m, "double_weights", |params, shared| {
        let uid: u16 = params.one()?;
        Ok(json!(
            shared.lock().weights.get(&uid).cloned().unwrap_or_default()
        ))
    });
    m
}

/// Binds `listen` and serves the module; returns the bound address.
pub async fn serve(
    listen: SocketAddr,
    shared: Arc<Shared>,
) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let server = Server::builder().build(listen).await?;
    let addr = server.local_addr()?;
    let handle = server.start(module(shared));
    Ok((addr, handle))
}
