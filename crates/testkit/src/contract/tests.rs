use std::collections::BTreeSet;

macro_rules! names {
    ($($name:ident),* $(,)?) => {
        [$(stringify!($name)),*]
    };
}

/// Every `pub async fn` under `src/contract/` is a case; each must be in the list the
/// runners expand, or it would exist and never run.
#[test]
fn every_case_is_in_the_list() {
    let listed: Vec<&str> = crate::contract_cases!(names).to_vec();
    let unique: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(unique.len(), listed.len(), "a case is listed twice");

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/contract");
    let mut written = BTreeSet::new();
    for entry in std::fs::read_dir(dir).expect("reading src/contract") {
        let path = entry.expect("directory entry").path();
        let source = std::fs::read_to_string(&path).expect("reading a contract module");
        for line in source.lines() {
            if let Some(rest) = line.trim_start().strip_prefix("pub async fn ") {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                written.insert(name);
            }
        }
    }
    let written: BTreeSet<&str> = written.iter().map(String::as_str).collect();
    assert!(
        written.len() > 20,
        "found only {written:?}: wrong directory?"
    );
    let missing: Vec<&&str> = written.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "contract cases not in contract_cases! (they would never run): {missing:?}"
    );
}
