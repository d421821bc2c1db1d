//! Property tests for what Pebble reads from outside: layer YAML (from charms over the
//! API and from the layers directory), durations and command lines inside it. None of
//! them may panic; errors are values that name the input.

use std::time::Duration;

use pebble::plan::{Layer, Plan};
use pebble::util::{format_duration, parse_command, parse_duration};
use proptest::prelude::*;

/// Layer YAML built from the fields Pebble knows, with values both sensible and not.
fn layer_yaml() -> impl Strategy<Value = String> {
    let name = prop_oneof![
        Just("svc".to_string()),
        Just("pebble".to_string()),
        Just("-x".to_string()),
        Just("".to_string()),
        "[a-z]{1,6}",
    ];
    let value = prop_oneof![
        Just("merge".to_string()),
        Just("replace".to_string()),
        Just("enabled".to_string()),
        Just("restart".to_string()),
        Just("shutdown".to_string()),
        Just("success-shutdown".to_string()),
        Just("failure-shutdown".to_string()),
        Just("1s".to_string()),
        Just("-1s".to_string()),
        Just("[svc]".to_string()),
        Just("{}".to_string()),
        Just("/bin/true [ --x ]".to_string()),
        Just("'unclosed".to_string()),
        Just("99999999999999999999h".to_string()),
        "[ -~]{0,12}",
    ];
    let field = prop_oneof![
        Just("override"),
        Just("startup"),
        Just("command"),
        Just("after"),
        Just("before"),
        Just("requires"),
        Just("on-success"),
        Just("on-failure"),
        Just("backoff-delay"),
        Just("backoff-factor"),
        Just("kill-delay"),
        Just("user-id"),
        Just("working-dir"),
        Just("environment"),
    ];
    let service = (
        name.clone(),
        proptest::collection::vec((field, value.clone()), 0..6),
    );
    let check_field = prop_oneof![
        Just("override"),
        Just("level"),
        Just("period"),
        Just("timeout"),
        Just("threshold"),
        Just("http"),
        Just("tcp"),
        Just("exec"),
    ];
    let check = (name, proptest::collection::vec((check_field, value), 0..5));
    (
        proptest::collection::vec(service, 0..4),
        proptest::collection::vec(check, 0..3),
    )
        .prop_map(|(services, checks)| {
            let mut y = String::from("summary: generated\nservices:\n");
            for (name, fields) in services {
                y.push_str(&format!("  {name:?}:\n"));
                for (f, v) in fields {
                    y.push_str(&format!("    {f}: {v:?}\n"));
                }
            }
            y.push_str("checks:\n");
            for (name, fields) in checks {
                y.push_str(&format!("  {name:?}:\n"));
                for (f, v) in fields {
                    y.push_str(&format!("    {f}: {v:?}\n"));
                }
            }
            y
        })
}

proptest! {
    #[test]
    fn any_text_as_a_layer_is_parsed_or_refused_with_the_label(text in "\\PC{0,200}") {
        if let Err(e) = Layer::parse(1, "from-test", &text) {
            prop_assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn generated_layers_parse_combine_and_plan_without_panicking(
        a in layer_yaml(),
        b in layer_yaml(),
    ) {
        let layers: Vec<Layer> = [(1, "a", &a), (2, "b", &b)]
            .into_iter()
            .filter_map(|(order, label, y)| Layer::parse(order, label, y).ok())
            .collect();
        if let Ok(plan) = Plan::new(&layers) {
            let names: Vec<String> = plan.combined.services.keys().cloned().collect();
            // Ordering may refuse a cycle or a missing dependency, never panic.
            let _ = plan.start_order(&names);
            let _ = plan.stop_order(&names);
            for s in plan.combined.services.values() {
                let _ = s.argv();
            }
            let _ = plan.to_yaml();
        }
    }

    #[test]
    fn any_duration_text_is_parsed_or_refused(text in "\\PC{0,24}") {
        match parse_duration(&text) {
            Ok(d) => prop_assert!(d <= Duration::from_secs(10_000_000_000)),
            Err(e) => prop_assert!(e.contains(text.trim()) || e.contains(&text)),
        }
    }

    #[test]
    fn formatted_durations_parse_back(ms in 0u64..100_000_000_000) {
        let d = Duration::from_millis(ms);
        let back = parse_duration(&format_duration(d)).unwrap();
        let diff = back.abs_diff(d);
        prop_assert!(diff < Duration::from_micros(1), "{d:?} came back as {back:?}");
    }

    #[test]
    fn any_command_text_is_split_or_refused(text in "\\PC{0,80}") {
        if let Ok((base, _extra)) = parse_command(&text) {
            prop_assert!(!base.is_empty() || text.trim().is_empty() || text.contains(['"', '\'']));
        }
    }

    #[test]
    fn plain_words_split_back_into_the_same_arguments(
        words in proptest::collection::vec("[a-zA-Z0-9_./=-]{1,10}", 1..8),
    ) {
        let (base, extra) = parse_command(&words.join(" ")).unwrap();
        prop_assert_eq!(base, words);
        prop_assert!(extra.is_empty());
    }
}
