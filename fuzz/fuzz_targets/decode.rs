//! Any bytes → `decode` must not panic, and nothing reachable from what it returns may panic
//! either: the lazy `nodes` / `nodes6` / `values` / `samples` iterators, the owned bencode
//! parser on BEP 44 values, `DecodeError::reply` and the `Display` impls.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xorro_wire::value::Value;
use xorro_wire::{Body, Message, QueryKind, RawValue, decode};

fuzz_target!(|data: &[u8]| {
    match decode(data) {
        Ok(m) => touch(&m),
        Err(e) => {
            let _ = e.reply();
            let _ = e.to_string();
        }
    }
});

fn touch(m: &Message<'_>) {
    let _ = format!("{m:?}");
    match &m.body {
        Body::Query(q) => {
            let _ = q.kind.method();
            if let QueryKind::Put(p) = &q.kind {
                parse_value(&p.value);
            }
        }
        Body::Response(r) => {
            for nodes in [r.nodes, r.nodes6].into_iter().flatten() {
                let n = nodes.iter().count();
                assert_eq!(n, nodes.len());
            }
            if let Some(values) = r.values {
                assert_eq!(values.iter().count(), values.len());
            }
            if let Some(samples) = r.samples {
                assert_eq!(samples.iter().count(), samples.len());
            }
            if let Some(v) = &r.value {
                parse_value(v);
            }
        }
        Body::Error(e) => {
            let _ = e.code.to_string();
        }
    }
}

fn parse_value(v: &RawValue<'_>) {
    // The decoder checked that `v` is one well-formed value; the owned parser may still
    // refuse an integer that does not fit 64 bits, but must not panic.
    if let Ok(value) = Value::parse(v) {
        let _ = value.to_string();
    }
}
