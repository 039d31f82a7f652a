//! Replays the fuzz corpus and every crash reproducer on stable, without libFuzzer: each file of
//! `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` goes through the same function the
//! cargo-fuzz target calls (`ipsecgw::fuzzing`), and none may panic. A crash found by
//! `scripts/fuzz.sh` lands in `fuzz/regressions/<target>/` and is guarded here from then on.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && p.file_name().is_none_or(|n| n != ".gitkeep"));
    v.sort();
    v
}

fn replay(target: &str) {
    let (_, body) = ipsecgw::fuzzing::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target named {target}"));
    let corpus = files(&fuzz_dir().join("corpus").join(target));
    assert!(
        !corpus.is_empty(),
        "fuzz/corpus/{target}/ is empty: seed it (scripts/fuzz-seeds.sh)"
    );
    let regressions = files(&fuzz_dir().join("regressions").join(target));
    let mut failed = Vec::new();
    for path in corpus.iter().chain(&regressions) {
        let data = fs::read(path).expect("read corpus file");
        if catch_unwind(AssertUnwindSafe(|| body(&data))).is_err() {
            failed.push(path.display().to_string());
        }
    }
    assert!(
        failed.is_empty(),
        "{target}: {} of {} inputs panicked:\n{}",
        failed.len(),
        corpus.len() + regressions.len(),
        failed.join("\n")
    );
}

macro_rules! replay_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                replay(stringify!($name));
            }
        )*

        /// Every target has a replay test here, and every folder belongs to a target.
        #[test]
        fn every_target_is_replayed() {
            let here = [$(stringify!($name)),*];
            let targets: Vec<&str> = ipsecgw::fuzzing::TARGETS.iter().map(|(n, _)| *n).collect();
            assert_eq!(here.to_vec(), targets, "replay tests and fuzzing::TARGETS differ");
            for kind in ["corpus", "regressions"] {
                for dir in fs::read_dir(fuzz_dir().join(kind)).expect("fuzz folder").flatten() {
                    let name = dir.file_name().to_string_lossy().into_owned();
                    assert!(
                        targets.contains(&name.as_str()),
                        "fuzz/{kind}/{name} belongs to no fuzz target"
                    );
                }
            }
        }
    };
}

replay_tests!(
    ike_decode,
    ike_sk,
    ike_responder,
    ike_initiator,
    cookie_gate,
    esp_decap,
    bgp_decode,
    bgp_session,
    flow,
    config,
    control,
);
