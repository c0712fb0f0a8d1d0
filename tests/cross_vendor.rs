//! `portable` on another CPU vendor: `tandem env`'s fingerprint computed
//! under qemu-user emulating an AMD EPYC (AVX2 and FMA, no AVX-512) must be
//! the committed one (scripts/cross_vendor.sh --fingerprint-only). Its last
//! line is a PM's loss and two Adam steps: with MKL's square root (before
//! `portable 3`) that line differs between the Intel host and the emulated
//! EPYC. qemu is installed when missing and the test runs as root; without
//! either the test says so and passes, unless TANDEM_REQUIRE_QEMU=1 (set by
//! .ci/run) makes that a failure. The longer check, the micro study's golden
//! PM under emulation (about 16 minutes), is `make cross-vendor`.

use std::process::Command;

#[test]
fn the_fingerprint_under_an_emulated_amd_epyc_is_the_committed_one() {
    let have_qemu = Command::new("qemu-x86_64").arg("--version").output().is_ok_and(|o| o.status.success());
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !have_qemu && !root {
        assert!(
            std::env::var_os("TANDEM_REQUIRE_QEMU").is_none(),
            "TANDEM_REQUIRE_QEMU is set, but qemu-x86_64 is missing and installing it needs root"
        );
        eprintln!(
            "SKIPPED: qemu-x86_64 is missing and installing it needs root (TANDEM_REQUIRE_QEMU=1 makes this a failure)"
        );
        return;
    }
    let out = Command::new("bash")
        .args(["scripts/cross_vendor.sh", "--fingerprint-only"])
        .env("TANDEM_BIN", env!("CARGO_BIN_EXE_tandem"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("fingerprint: the same under EPYC-Rome"), "{text}");
}
