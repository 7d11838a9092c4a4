//! `sled-disk`: what sled 0.34 itself takes on disk per record, with no emulator around it.
//! Writes N records of one value size under big-endian sequence keys into one tree of a fresh
//! database in a temporary directory (a flush every 64 records, as a busy group commit would),
//! flushes, and prints the database file's size per record; then removes the directory.
//!
//!   cargo run --release -p userflows-loadtests --bin sled-disk -- 200000 380 100

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (count, sizes) = args
        .split_first()
        .context("usage: sled-disk RECORDS VALUE_BYTES...")?;
    let count: u64 = count.parse().context("RECORDS must be a number")?;
    println!("| value bytes | records | db file bytes per record | overhead per record |");
    println!("|---:|---:|---:|---:|");
    for size in sizes {
        let size: usize = size.parse().context("VALUE_BYTES must be numbers")?;
        let per_record = measure(count, size)?;
        println!(
            "| {size} | {count} | {per_record} | {} |",
            per_record.saturating_sub(size as u64)
        );
    }
    Ok(())
}

fn measure(count: u64, size: usize) -> anyhow::Result<u64> {
    let dir = std::env::temp_dir().join(format!("sled-disk-{}-{size}", std::process::id()));
    let db = sled::Config::new()
        .path(&dir)
        .cache_capacity(16 * 1024 * 1024)
        .open()
        .context("opening the database")?;
    let tree = db.open_tree("events/bench")?;
    let mut value = vec![b'x'; size.max(8)];
    value.truncate(size);
    for seq in 1..=count {
        let stamp = seq.to_le_bytes();
        let n = stamp.len().min(value.len());
        value[..n].copy_from_slice(&stamp[..n]);
        tree.insert(seq.to_be_bytes(), value.as_slice())?;
        if seq % 64 == 0 {
            db.flush()?;
        }
    }
    db.flush()?;
    drop(tree);
    drop(db);
    let bytes = std::fs::metadata(dir.join("db"))
        .context("reading the database file's size")?
        .len();
    std::fs::remove_dir_all(&dir).context("removing the temporary directory")?;
    Ok(bytes / count)
}
