//! Architecture invariant: `wasmeow-sim` builds on `wasmeow-protocol` and never on
//! `wasmeow-session` (a server sharing the client's runtime would prove nothing about it).

#[test]
fn the_simulator_never_depends_on_the_session_runtime() {
    let manifest =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).unwrap();
    let deps: Vec<&str> = manifest
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split(['.', '=', ' ']).next())
        .collect();
    assert!(
        deps.contains(&"wasmeow-protocol"),
        "built on the sans-IO core"
    );
    for forbidden in [
        "wasmeow-session",
        "wasmeow-store",
        "wasmeow-plugin-host",
        "wasmeow",
    ] {
        assert!(
            !deps.contains(&forbidden),
            "wasmeow-sim must not depend on {forbidden}"
        );
    }
}
