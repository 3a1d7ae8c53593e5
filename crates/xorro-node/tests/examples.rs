//! The examples in `examples/` run to completion (each starts its own network on 127.0.0.1).

#[path = "../examples/find_peers.rs"]
mod find_peers;
#[path = "../examples/mutable_record.rs"]
mod mutable_record;
#[path = "../examples/store_value.rs"]
mod store_value;

#[test]
fn find_peers_example_runs() {
    find_peers::main().expect("the example runs");
}

#[test]
fn store_value_example_runs() {
    store_value::main().expect("the example runs");
}

#[test]
fn mutable_record_example_runs() {
    mutable_record::main().expect("the example runs");
}
