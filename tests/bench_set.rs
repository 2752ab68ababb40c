//! The committed benchmark set (`bench/set`) is reproducible: regenerating the first two items of
//! every family gives the committed `items.jsonl` lines and the image hashes in `MANIFEST`.
//! Only `items.jsonl` and `MANIFEST` are committed; `etchr gen-data --family all --n 30 --seed 4
//! --out bench/set` regenerates `bench/set/images/` (see bench/README.md).
//!
//! When this fails after a generator change, regenerate the set and the manifest (same command,
//! then `cd bench/set && sha256sum images/* | sort -k2 > MANIFEST`) and rerun the benchmark:
//! results in bench/RESULTS.md refer to the committed bytes.

use std::collections::HashMap;
use std::path::Path;

use etchr_data::{encode_for_path, generate, render_gold, Family, Item};
use etchr_reason::sha256_hex;

fn set_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/bench/set"))
}

/// `images/<file>` → sha256, from `MANIFEST` (`sha256sum` format).
fn manifest() -> HashMap<String, String> {
    let text = std::fs::read_to_string(set_dir().join("MANIFEST")).expect("bench/set/MANIFEST");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (hash, name) = l.split_once("  ").expect("`HASH  PATH` lines");
            (name.trim().to_string(), hash.trim().to_string())
        })
        .collect()
}

#[test]
fn committed_set_regenerates_identically() {
    let lines = std::fs::read_to_string(set_dir().join("items.jsonl")).expect("items.jsonl");
    let committed: Vec<(&str, Item)> = lines
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| (l, serde_json::from_str(l).expect("an item")))
        .collect();
    let hashes = manifest();
    assert_eq!(committed.len(), 180, "30 items per family");
    assert_eq!(hashes.len(), 360, "an original and a gold image per item");
    for family in Family::ALL {
        let of_family: Vec<_> = committed
            .iter()
            .filter(|(_, i)| i.family == family)
            .collect();
        assert_eq!(of_family.len(), 30, "{family}");
        for (line, item) in of_family.into_iter().take(2) {
            let (fresh, img) = generate(family, item.seed, item.index);
            assert_eq!(
                serde_json::to_string(&fresh).unwrap(),
                *line,
                "{}: the generator no longer produces the committed item",
                item.id
            );
            let original = sha256_hex(&encode_for_path(&img, &fresh.image).unwrap());
            assert_eq!(Some(&original), hashes.get(&fresh.image), "{}", fresh.image);
            let gold = render_gold(&fresh, &img).unwrap();
            let gold = sha256_hex(&encode_for_path(&gold, &fresh.gold_image).unwrap());
            assert_eq!(
                Some(&gold),
                hashes.get(&fresh.gold_image),
                "{}",
                fresh.gold_image
            );
        }
    }
}

/// `etchr gen-data --face-file` draws every item's text in the given face. Given DejaVu Serif,
/// one of the generator's own four, the items that picked serif come out byte for byte as
/// without it and the others do not; a file that is no face is refused before anything is
/// written. (In a process of its own: the replacement holds for the rest of the process.)
#[test]
fn gen_data_draws_in_a_face_file_when_given_one() {
    let tmp = tempfile::tempdir().unwrap();
    let fonts = Path::new(env!("CARGO_MANIFEST_DIR")).join("crates/etchr-data/assets/fonts");
    let gen = |out: &Path, extra: &[&std::ffi::OsStr]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_etchr"))
            .args([
                "gen-data",
                "--family",
                "fine_grained",
                "--n",
                "8",
                "--seed",
                "3",
            ])
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap()
    };
    let (usual, serif) = (tmp.path().join("usual"), tmp.path().join("serif"));
    assert!(gen(&usual, &[]).status.success());
    let face = fonts.join("DejaVuSerif.ttf");
    let run = gen(&serif, &["--face-file".as_ref(), face.as_os_str()]);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let items = |dir: &Path| -> Vec<Item> {
        std::fs::read_to_string(dir.join("items.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (a, b) = (items(&usual), items(&serif));
    assert_eq!(a.len(), 8);
    let (mut same, mut redrawn) = (0, 0);
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(a.meta["face"], b.meta["face"], "{}", a.id);
        let bytes = |dir: &Path, item: &Item| std::fs::read(dir.join(&item.image)).unwrap();
        if a.meta["face"] == "serif" {
            assert!(bytes(&usual, a) == bytes(&serif, b), "{}", a.id);
            same += 1;
        } else {
            assert!(bytes(&usual, a) != bytes(&serif, b), "{}", a.id);
            redrawn += 1;
        }
    }
    assert!(
        same > 0 && redrawn > 0,
        "{same} serif items, {redrawn} others"
    );

    let bad = gen(
        &tmp.path().join("bad"),
        &[
            "--face-file".as_ref(),
            fonts.join("LICENSE-DejaVu.txt").as_os_str(),
        ],
    );
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("not a TrueType or OpenType face"), "{err}");
    assert!(!tmp.path().join("bad/items.jsonl").exists());
}
