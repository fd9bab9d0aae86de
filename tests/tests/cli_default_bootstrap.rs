//! The tools find the broker without `--bootstrap-server`: from
//! `$VLTAVA_BOOTSTRAP`, else the zero-config broker's 127.0.0.1:9092; the
//! flag still wins over both.

use std::process::{Command, Output};

use vltava_tests::raw::RawClient;
use vltava_tests::{free_port, vltava_bin, TestBroker};

fn vltava(args: &[&str], bootstrap_env: Option<&str>) -> Output {
    let mut cmd = Command::new(vltava_bin());
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("VLTAVA_BOOTSTRAP");
    if let Some(bootstrap) = bootstrap_env {
        cmd.env("VLTAVA_BOOTSTRAP", bootstrap);
    }
    cmd.output().expect("run vltava")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn tools_take_the_broker_from_vltava_bootstrap_and_the_flag_wins() {
    let broker = TestBroker::start(&[]);
    let mut c = RawClient::connect(broker.addr()).unwrap();
    assert_eq!(c.create_topic_code("found-by-env", 1).unwrap(), 0);
    let bootstrap = broker.bootstrap();

    let out = vltava(&["topics", "--list"], Some(&bootstrap));
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "found-by-env\n");

    let out = vltava(&["consumer-groups", "--list"], Some(&bootstrap));
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Nothing listens on this port: the flag must be what is used.
    let nowhere = format!("127.0.0.1:{}", free_port());
    let out = vltava(
        &["topics", "--list", "--bootstrap-server", &bootstrap],
        Some(&nowhere),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "found-by-env\n");

    // And the environment is what is used without the flag.
    let out = vltava(&["topics", "--list"], Some(&nowhere));
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains(&nowhere),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn without_flag_or_environment_the_tools_use_the_zero_config_listener() {
    // Only the address is checked (something else may hold port 9092 on a
    // test machine): the error names it when nothing answers there, and a
    // broker answering there lists its topics.
    let out = vltava(&["topics", "--list"], None);
    if !out.status.success() {
        assert!(
            text(&out.stderr).contains("127.0.0.1:9092"),
            "{}",
            text(&out.stderr)
        );
    }
}
