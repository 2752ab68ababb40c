//! Answer codes, key vocabularies, and ports of the reader emulator's matching rules, so the
//! generator can check its own items against the rule it will be graded by
//! (`bench/reader/answer_rule.py`).

use crate::rng::Rng;
use std::collections::HashSet;

/// Characters without look-alikes: no O/0, I/1/L, S/5, B/8, Z/2.
pub const CODE_ALPHABET: &[u8] = b"ACDEFGHJKMNPQRTUVWXY34679";
const DIGITS: &[u8] = b"34679";
const LETTERS: &[u8] = b"ACDEFGHJKMNPQRTUVWXY";

/// True when `token`, uppercased, has the shape of an answer code (5–6 alphabet characters).
/// Used to make sure no ordinary word in a scene can be taken for a code by an OCR reader that
/// returns it in capitals.
pub fn looks_like_code(token: &str) -> bool {
    let u = token.to_ascii_uppercase();
    (5..=6).contains(&u.len()) && u.bytes().all(|b| CODE_ALPHABET.contains(&b))
}

/// Draws codes that are unique within one item. Every code holds at least one digit and two
/// letters: the reader only uppercases a token that has a digit, so an all-letter code misread
/// in mixed case would be lost for reasons unrelated to legibility.
#[derive(Debug, Default)]
pub struct CodeBook {
    used: HashSet<String>,
}

impl CodeBook {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn draw(&mut self, rng: &mut Rng) -> String {
        loop {
            let len = if rng.chance(0.5) { 5 } else { 6 };
            let code: String = (0..len).map(|_| *rng.pick(CODE_ALPHABET) as char).collect();
            let digits = code.bytes().filter(|b| DIGITS.contains(b)).count();
            let letters = code.bytes().filter(|b| LETTERS.contains(b)).count();
            if digits >= 1 && letters >= 2 && self.used.insert(code.clone()) {
                return code;
            }
        }
    }
}

/// A decimal number with one digit after the point, as charts annotate values.
pub fn decimal(v: f64) -> String {
    format!("{v:.1}")
}

fn despaced(s: &str) -> (Vec<char>, Vec<usize>) {
    let mut chars = Vec::new();
    let mut idx = Vec::new();
    for (i, c) in s.chars().enumerate() {
        if !c.is_whitespace() {
            chars.extend(c.to_lowercase());
            idx.push(i);
        }
    }
    (chars, idx)
}

/// How many times the reader would find `key` in `text`: case-insensitive, spaces ignored, and
/// not glued to letters or digits on either side (a port of `_key_end_positions`).
pub fn key_occurrences(text: &str, key: &str) -> usize {
    let (dk, _) = despaced(key);
    let (dt, idx) = despaced(text);
    let chars: Vec<char> = text.chars().collect();
    if dk.is_empty() || dk.len() > dt.len() {
        return 0;
    }
    let mut n = 0;
    for p in 0..=dt.len() - dk.len() {
        if dt[p..p + dk.len()] != dk[..] {
            continue;
        }
        let (first, last) = (idx[p], idx[p + dk.len() - 1]);
        if dk[0].is_alphanumeric() && first > 0 && chars[first - 1].is_alphanumeric() {
            continue;
        }
        if dk[dk.len() - 1].is_alphanumeric()
            && last + 1 < chars.len()
            && chars[last + 1].is_alphanumeric()
        {
            continue;
        }
        n += 1;
    }
    n
}

/// The quoted key of a question as the reader finds it: the first `"…"` substring.
pub fn quoted_key(question: &str) -> Option<String> {
    let start = question.find('"')?;
    let rest = &question[start + 1..];
    let end = rest.find('"')?;
    Some(rest[..end].trim().to_string())
}

/// The answer format the reader takes from a question: the first of the words code(s),
/// number(s), value(s); "code" when none appears.
pub fn question_format(question: &str) -> &'static str {
    let lower = question.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(|c: char| !c.is_ascii_alphanumeric()).collect();
    for w in words {
        match w {
            "code" | "codes" => return "code",
            "number" | "numbers" | "value" | "values" => return "number",
            _ => {}
        }
    }
    "code"
}

/// Key vocabularies avoid words starting with O or I: the OCR reads a leading capital O as a
/// zero often enough to lose the key (`0riole`).
///
/// Equipment words for tag keys (`"Pump 7"`). None is code-like in capitals (see the tests).
pub const TAG_WORDS: &[&str] = &[
    "Pump", "Valve", "Tank", "Gate", "Relay", "Fan", "Duct", "Pipe", "Drum", "Coil", "Cell",
    "Dock", "Bay", "Rack", "Vent", "Mixer", "Hopper", "Boiler", "Panel", "Cooler", "Sensor",
    "Switch", "Kiln", "Silo", "Press", "Winch", "Shaft", "Rotor", "Nozzle", "Burner", "Filter",
    "Tower", "Reel", "Spool", "Hoist", "Sluice",
];

/// Single-word category names for chart keys.
pub const CHART_NAMES: &[&str] = &[
    "Kestrel",
    "Heron",
    "Plover",
    "Curlew",
    "Finch",
    "Wren",
    "Robin",
    "Swift",
    "Lark",
    "Tern",
    "Gull",
    "Merlin",
    "Falcon",
    "Petrel",
    "Puffin",
    "Dunlin",
    "Avocet",
    "Bittern",
    "Grebe",
    "Stork",
    "Magpie",
    "Linnet",
    "Thrush",
    "Siskin",
    "Shrike",
    "Hobby",
    "Kite",
    "Rook",
    "Jay",
    "Teal",
    "Wigeon",
    "Scoter",
    "Smew",
    "Pipit",
    "Bunting",
    "Warbler",
    "Starling",
    "Sparrow",
    "Martin",
    "Nuthatch",
    "Dipper",
    "Harrier",
    "Buzzard",
    "Goshawk",
    "Fulmar",
    "Shag",
    "Skua",
    "Auk",
    "Snipe",
    "Woodcock",
    "Redshank",
    "Godwit",
    "Whimbrel",
    "Lapwing",
    "Dotterel",
    "Knot",
    "Stint",
    "Ruff",
    "Sanderling",
    "Bulbul",
];

/// Place words for document row keys (`"Harbor 27"`).
pub const PLACES: &[&str] = &[
    "Harbor", "Meadow", "Summit", "Canyon", "Lagoon", "Prairie", "Glacier", "Harvest", "Beacon",
    "Granite", "Willow", "Maple", "Birch", "Aspen", "Juniper", "Hollow", "Ridge", "Valley",
    "Forest", "Bridge", "Tunnel", "Station", "Castle", "Pioneer", "Lantern", "Compass",
];

/// Column headers for document tables.
pub const HEADERS: &[&str] = &[
    "Lot", "Batch", "Serial", "Permit", "Order", "Ref", "Tag", "Bin", "Route", "Seal", "Case",
    "Pallet", "Ticket", "Voucher", "Cargo", "Slot", "Docket", "Invoice",
];

/// Single-word keys for sign lines (`"Batch": K7XQ4`).
pub const SIGN_KEYS: &[&str] = &[
    "Batch", "Lot", "Seal", "Ref", "Permit", "Route", "Ticket", "Serial", "Bin", "Pallet", "Dock",
    "Case", "Voucher", "Sample", "Run", "Shift", "Zone", "Unit", "Docket", "Cargo", "Slot",
    "Berth",
];

/// Colour names with the RGB used to paint them. Saturated enough to be free space in a maze.
pub const COLOURS: &[(&str, [u8; 3])] = &[
    ("red", [214, 39, 40]),
    ("blue", [31, 90, 200]),
    ("green", [34, 150, 60]),
    ("orange", [245, 130, 20]),
    ("purple", [128, 60, 180]),
    ("pink", [230, 90, 170]),
    ("teal", [0, 150, 150]),
    ("brown", [150, 90, 40]),
];

pub fn colour(name: &str) -> [u8; 3] {
    COLOURS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .expect("known colour")
}

/// Words for filler text (titles, notes). None is code-like in capitals.
pub const FILLER: &[&str] = &[
    "inventory",
    "register",
    "section",
    "records",
    "shipment",
    "notes",
    "checked",
    "weekly",
    "summary",
    "stock",
    "counts",
    "for",
    "the",
    "and",
    "of",
    "all",
    "items",
    "listed",
    "below",
    "were",
    "logged",
    "on",
    "arrival",
    "signed",
    "by",
    "shift",
    "lead",
    "see",
    "page",
    "total",
    "entries",
    "audit",
    "pending",
    "review",
    "storage",
    "yard",
    "north",
    "south",
    "east",
    "west",
    "wing",
    "level",
    "area",
    "report",
    "ledger",
];

pub fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s: Vec<String> = (0..words).map(|_| rng.pick(FILLER).to_string()).collect();
    if let Some(f) = s.first_mut() {
        let mut c = f.chars();
        if let Some(h) = c.next() {
            *f = h.to_uppercase().collect::<String>() + c.as_str();
        }
    }
    s.join(" ") + "."
}

/// Chart panel titles.
pub const CHART_TITLES: &[&str] = &[
    "Rainfall by station",
    "Monthly output",
    "Visitor counts",
    "Power draw",
    "Sensor readings",
    "Yield per plot",
    "Tide levels",
    "Noise survey",
    "Traffic volume",
    "Growth rates",
    "Wind speed",
    "Soil moisture",
    "Wait times",
    "Pressure log",
    "Harvest weights",
    "Ticket sales",
];

/// Chart series (legend) names.
pub const SERIES: &[&str] = &[
    "Morning", "Evening", "Night", "Spring", "Winter", "Plan", "Actual", "Forecast",
];

/// Titles of jigsaw signs.
pub const SIGN_TITLES: &[&str] = &[
    "Shipping label",
    "Cargo manifest",
    "Dispatch note",
    "Storage sign",
    "Yard notice",
    "Depot card",
];

/// Ordinals, for questions only (never drawn).
pub const ORDINALS: &[&str] = &[
    "first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth",
    "eleventh", "twelfth",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_vocabulary_word_looks_like_a_code() {
        // Every list whose words are drawn in images (colour names and ordinals only appear in
        // questions). Tokens are checked one by one, as the reader splits lines.
        for list in [
            TAG_WORDS,
            CHART_NAMES,
            PLACES,
            HEADERS,
            SIGN_KEYS,
            FILLER,
            CHART_TITLES,
            SERIES,
            SIGN_TITLES,
            &["Exit", "Item"],
        ] {
            for w in list.iter().flat_map(|p| p.split_whitespace()) {
                assert!(!looks_like_code(w), "{w} looks like a code");
            }
        }
    }

    #[test]
    fn codes_are_unique_and_well_formed() {
        let mut rng = Rng::new(3);
        let mut book = CodeBook::new();
        let mut seen = HashSet::new();
        for _ in 0..500 {
            let c = book.draw(&mut rng);
            assert!(looks_like_code(&c), "{c}");
            assert!(seen.insert(c));
        }
    }

    #[test]
    fn key_matching_follows_the_reader() {
        assert_eq!(key_occurrences("Pump 7: K7XQ4", "Pump 7"), 1);
        assert_eq!(key_occurrences("Pump7:K7XQ4", "Pump 7"), 1);
        assert_eq!(key_occurrences("Pump 72: K7XQ4", "Pump 7"), 0);
        assert_eq!(key_occurrences("XPump 7: K7XQ4", "Pump 7"), 0);
        assert_eq!(key_occurrences("pump 7 and PUMP 7", "Pump 7"), 2);
        assert_eq!(
            quoted_key(r#"What is the code on "Pump 7" here?"#).as_deref(),
            Some("Pump 7")
        );
        assert_eq!(question_format("What number is the code?"), "number");
        assert_eq!(question_format("Which code value?"), "code");
    }
}
