//! Rebuilds the crate when a migration changes: `sqlx::migrate!` embeds the SQL files at
//! compile time but cannot ask Cargo to watch them on a stable toolchain.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
