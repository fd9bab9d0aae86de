//! The tools find the broker without `--bootstrap-server`: from
//! `$VLTAVA_BOOTSTRAP`, else the zero-config broker's 127.0.0.1:9092; the
//! flag still wins over both.

use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use vltava_tests::raw::RawClient;
use vltava_tests::{free_port, run_tool, text, vltava_bin, wait_until, TestBroker, TOOL_TIMEOUT};

fn vltava(args: &[&str], bootstrap_env: Option<&str>) -> Output {
    let mut cmd = Command::new(vltava_bin());
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("VLTAVA_BOOTSTRAP");
    if let Some(bootstrap) = bootstrap_env {
        cmd.env("VLTAVA_BOOTSTRAP", bootstrap);
    }
    run_tool(cmd, "", TOOL_TIMEOUT)
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
    assert_eq!(text(&out.stdout), "", "no groups exist");

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
    // Listen on 127.0.0.1:9092 ourselves and see the tool connect there. If
    // something else holds the port on this machine, the test cannot tell
    // whose connection it would be and says so.
    let Ok(listener) = TcpListener::bind("127.0.0.1:9092") else {
        println!("note: 127.0.0.1:9092 is taken on this machine; default not checked");
        return;
    };
    listener.set_nonblocking(true).unwrap();
    let mut child = Command::new(vltava_bin())
        .args(["topics", "--list"])
        .env_remove("RUST_LOG")
        .env_remove("VLTAVA_BOOTSTRAP")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run vltava");
    let connected = wait_until(Duration::from_secs(20), || listener.accept().is_ok());
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        connected,
        "vltava topics --list did not connect to 127.0.0.1:9092"
    );
}
