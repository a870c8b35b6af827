//! What a user of the published crate sees first: the README's first-look example is the
//! program of the downstream crate that CI builds and runs (`tests/downstream/default`).

use std::path::Path;

/// The body of the first ```rust block after `heading` in `markdown`.
fn first_rust_block_after<'a>(markdown: &'a str, heading: &str) -> &'a str {
    let from = markdown
        .find(heading)
        .expect("the heading is in the README");
    let rest = &markdown[from..];
    let open = rest
        .find("```rust\n")
        .expect("a rust block follows the heading")
        + 8;
    let len = rest[open..].find("```").expect("the block is closed");
    &rest[open..open + len]
}

#[test]
fn readme_first_look_is_the_downstream_crates_program() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let program =
        std::fs::read_to_string(root.join("tests/downstream/default/src/main.rs")).unwrap();
    assert_eq!(
        first_rust_block_after(&readme, "## A first look"),
        program,
        "README.md's first-look example and tests/downstream/default/src/main.rs differ"
    );
}
