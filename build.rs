//! Prepares the README's default mountpoint: `cargo run --release -- mount ./mnt` works in a
//! fresh clone. (The daemon itself refuses a missing mountpoint, as mount(8) does.)

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR") {
        let mnt = std::path::Path::new(&dir).join("mnt");
        if !mnt.exists() {
            let _ = std::fs::create_dir(&mnt);
        }
    }
}
