//! A cache on a filesystem that fills while a study runs: the error says so
//! (the cache, what was being written, the bytes it needs), nothing corrupt
//! or half-written is left, and once there is room the same study completes
//! with the artifacts of a run that never ran out of space.
//!
//! The small filesystem is a size-limited tmpfs, which mounting needs root
//! for. Without root the test says so and passes, unless
//! TANDEM_REQUIRE_ROOT=1 (set by .ci/run), which turns that into a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;
use common::{artifacts, MICRO_STUDY as STUDY};

fn tandem(cache: &Path, args: &[&str]) -> Command {
    common::Tandem::new().cache(cache).args(args).command()
}

fn output(mut c: Command) -> (Option<i32>, String) {
    let out = c.output().unwrap();
    (out.status.code(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

/// A tmpfs of a given size, unmounted when dropped.
struct Tmpfs {
    dir: PathBuf,
}

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let root =
            Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        if !root {
            assert!(
                std::env::var_os("TANDEM_REQUIRE_ROOT").is_none(),
                "TANDEM_REQUIRE_ROOT is set, but mounting a small tmpfs needs root"
            );
            eprintln!("SKIPPED: mounting a small tmpfs needs root (set TANDEM_REQUIRE_ROOT=1 to make this a failure)");
            return None;
        }
        std::fs::create_dir_all(dir).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount -t tmpfs failed");
        Some(Tmpfs { dir: dir.to_path_buf() })
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remounting the tmpfs failed");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
    }
}

#[test]
fn a_cache_that_fills_fails_clearly_keeps_nothing_half_written_and_completes_once_there_is_room() {
    let tmp = tempfile::tempdir().unwrap();
    // The whole study's cache is about 4.6 MB; 600 kB fills midway.
    let Some(fs) = Tmpfs::mount(&tmp.path().join("small"), "600k") else { return };
    let file = tmp.path().join("micro.exp");
    std::fs::write(&file, STUDY).unwrap();
    let cache = fs.dir.join("cache");
    let results = tmp.path().join("r");
    let run = || tandem(&cache, &["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()]);

    let (code, text) = output(run());
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains(&format!("the cache at {} is out of space", cache.display())), "{text}");
    assert!(text.contains("needs at least") && text.contains("bytes"), "{text}");
    // Nothing corrupt, nothing half-written left behind.
    let (code, verify) = output(tandem(&cache, &["verify"]));
    assert_eq!(code, Some(0), "{verify}");
    assert!(verify.contains(" 0 corrupt") && !verify.contains("stale"), "{verify}");
    assert_eq!(std::fs::read_dir(cache.join("tmp")).unwrap().count(), 0, "a staging folder was left behind");

    // Room again: the same command completes, as a run that never filled.
    fs.resize("64m");
    let (code, text) = output(run());
    assert_eq!(code, Some(0), "{text}");
    let whole = tmp.path().join("whole");
    let (code, text) = output(tandem(&whole, &["run", file.to_str().unwrap(), "--results", results.to_str().unwrap()]));
    assert_eq!(code, Some(0), "{text}");
    assert_eq!(artifacts(&file, &cache), artifacts(&file, &whole));
    let (code, verify) = output(tandem(&cache, &["verify"]));
    assert!(code == Some(0) && verify.contains(" 0 corrupt"), "{verify}");
}

#[test]
fn a_read_only_cache_is_said_to_be_read_only_and_nothing_claims_an_eviction() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(fs) = Tmpfs::mount(&tmp.path().join("ro"), "64m") else { return };
    let file = tmp.path().join("small.exp");
    let exp =
        "world w = summarize(seed: 2, vocab: 24, prompt_len: 6, response_len: 8)\ndataset d = generate(w, pairs: 20)\n";
    std::fs::write(&file, exp).unwrap();
    let cache = fs.dir.join("cache");
    let results = tmp.path().join("r");
    let (code, said) = output({
        let mut c = tandem(&cache, &["run"]);
        c.arg(&file).arg("--results").arg(&results);
        c
    });
    assert_eq!(code, Some(0), "{said}");
    // Corrupt d (its manifest edited), then make the filesystem read-only.
    let checked = tandem::check::check_source("small.exp", exp, Default::default());
    let plan = tandem::plan::lower::lower(&checked.program).unwrap();
    let manifest = cache.join("objects").join(plan.names()["d"].hex()).join("manifest.json");
    let edited = std::fs::read_to_string(&manifest).unwrap().replacen("\"pairs\": 20", "\"pairs\": 21", 1);
    std::fs::write(&manifest, edited).unwrap();
    let ok = Command::new("mount").args(["-o", "remount,ro"]).arg(&fs.dir).status().unwrap().success();
    assert!(ok, "remounting read-only failed");
    // verify --evict: the corrupt entry is named, not said to be evicted,
    // and the exit code is not 0.
    let (code, said) = output(tandem(&cache, &["verify", "--evict"]));
    assert_ne!(code, Some(0), "{said}");
    assert!(said.contains("Read-only") || said.contains("read-only"), "{said}");
    // run: nothing is said to be recomputed, and it fails.
    let (code, said) = output({
        let mut c = tandem(&cache, &["run"]);
        c.arg(&file).arg("--results").arg(&results);
        c
    });
    assert_ne!(code, Some(0), "{said}");
    assert!(!said.contains("evicted and recomputed"), "{said}");
    assert!(said.contains("corrupt cache entry"), "{said}");
    let _ = Command::new("mount").args(["-o", "remount,rw"]).arg(&fs.dir).status();
}
