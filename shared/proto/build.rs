//! Compiles every `.proto` under the repository's `proto/` directory with protox, a
//! pure-Rust protobuf compiler, so no system `protoc` is needed. The encoded descriptor set
//! (imports included, so `google.rpc` error details and well-known types are there too)
//! is written next to the generated code for server reflection, and a module tree that
//! mirrors the proto packages is generated so a new `.proto` file needs no change here.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use prost::Message as _;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest_dir = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest_dir.join("../../proto").canonicalize()?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed={}", proto_root.display());

    // Collect the files relative to the root, sorted so builds are reproducible.
    let mut files = Vec::new();
    collect_protos(&proto_root, &proto_root, &mut files)?;
    files.sort();
    for file in &files {
        println!("cargo:rerun-if-changed={}", proto_root.join(file).display());
    }

    let descriptor_set = protox::Compiler::new([&proto_root])?
        .include_imports(true)
        .include_source_info(true)
        .open_files(&files)?
        .file_descriptor_set();
    std::fs::write(
        out_dir.join("kosha_descriptor.bin"),
        descriptor_set.encode_to_vec(),
    )?;

    let packages: Vec<String> = descriptor_set
        .file
        .iter()
        .filter_map(|file| file.package.clone())
        .filter(|package| !package.starts_with("google.protobuf"))
        .collect();

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptor_set)?;

    std::fs::write(out_dir.join("module_tree.rs"), module_tree(&packages))?;
    Ok(())
}

fn collect_protos(root: &Path, dir: &Path, files: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect_protos(root, &path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "proto") {
            files.push(
                path.strip_prefix(root)
                    .expect("walked below the root")
                    .to_path_buf(),
            );
        }
    }
    Ok(())
}

/// Nested `pub mod` blocks, one per package segment, each including prost's output file.
fn module_tree(packages: &[String]) -> String {
    #[derive(Default)]
    struct Node {
        children: BTreeMap<String, Node>,
        file: Option<String>,
    }

    let mut root = Node::default();
    for package in packages {
        let mut node = &mut root;
        for segment in package.split('.') {
            node = node.children.entry(segment.to_string()).or_default();
        }
        // prost names a file after its package, with `r#` before a segment that is a
        // Rust keyword.
        let file_name: Vec<String> = package
            .split('.')
            .map(|segment| {
                if segment == "type" {
                    "r#type".to_string()
                } else {
                    segment.to_string()
                }
            })
            .collect();
        node.file = Some(format!("{}.rs", file_name.join(".")));
    }

    fn render(node: &Node, out: &mut String) {
        if let Some(file) = &node.file {
            let _ = writeln!(out, "include!(concat!(env!(\"OUT_DIR\"), \"/{file}\"));");
        }
        for (name, child) in &node.children {
            let ident = if name == "type" {
                "r#type".to_string()
            } else {
                name.clone()
            };
            let _ = writeln!(out, "pub mod {ident} {{");
            render(child, out);
            let _ = writeln!(out, "}}");
        }
    }

    let mut out = String::new();
    render(&root, &mut out);
    out
}
