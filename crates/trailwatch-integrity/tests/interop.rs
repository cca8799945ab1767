//! An auditor without trailwatch can check a digest with Python's `json` and `openssl`: the
//! signed-bytes definition in `docs/specs/archive.md` is reproducible by independent tools.

mod common;

use std::process::Command;

use common::*;

fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool)
        .arg(arg)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn python_and_openssl_verify_a_digest() -> TestResult {
    if !have("python3", "--version") || !have("openssl", "version") {
        eprintln!("SKIPPED: python3 or openssl is not installed");
        return Ok(());
    }
    let a = Archive::standard()?;
    let dir = tempfile::tempdir()?;
    let digest = &a.tracker(SYSTEM).digests[3];
    let json = trailwatch_integrity::file::decompress(&digest.bytes)?;
    std::fs::write(dir.path().join("digest.json"), &json)?;
    std::fs::write(dir.path().join("key.pub"), a.key.public_key().to_pem())?;
    let script = r#"
import json, sys
d = json.load(open(sys.argv[1] + "/digest.json"))
open(sys.argv[1] + "/sig.bin", "wb").write(bytes.fromhex(d.pop("digest_signature")))
open(sys.argv[1] + "/signed.bin", "wb").write(
    b"trailwatch-digest-v1\n" + json.dumps(d, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())
"#;
    let py = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .output()?;
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let ours = trailwatch_integrity::read_digest(&digest.bytes)?.signed_bytes;
    assert_eq!(std::fs::read(dir.path().join("signed.bin"))?, ours);

    let verify = |signed: &str| -> Res<bool> {
        let out = Command::new("openssl")
            .args([
                "pkeyutl", "-verify", "-pubin", "-inkey", "key.pub", "-rawin", "-in",
            ])
            .arg(signed)
            .args(["-sigfile", "sig.bin"])
            .current_dir(dir.path())
            .output()?;
        Ok(out.status.success())
    };
    assert!(verify("signed.bin")?, "openssl rejects the signature");
    let mut altered = ours.clone();
    altered.push(b' ');
    std::fs::write(dir.path().join("altered.bin"), altered)?;
    assert!(!verify("altered.bin")?, "openssl accepts an altered digest");
    Ok(())
}
