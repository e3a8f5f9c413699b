//! The README's usage example is `examples/usage.rs`, compiled with the crate: this keeps the
//! two identical.

#[test]
fn readme_usage_example_is_the_compiled_one() {
    let usage = include_str!("../examples/usage.rs");
    let code = &usage[usage.find("use std::time::Duration;").expect("usage code")..];
    let readme = include_str!("../README.md");
    assert!(
        readme.contains(&format!("```rust\n{code}```")),
        "README's usage example differs from examples/usage.rs"
    );
}
