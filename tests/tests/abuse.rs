//! Connection abuse against the real binary: many idle connections, a
//! slowloris sender, a client that never reads, huge length prefixes. In
//! each, the broker's memory (VmRSS) stays bounded, a healthy client keeps
//! getting Metadata answers within a deadline, the named limit acts, and the
//! broker logs what it did.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use vltava_tests::raw::RawClient;
use vltava_tests::{wait_until, TestBroker};

/// How long a healthy request may take while the broker is under abuse.
const HEALTHY_DEADLINE: Duration = Duration::from_secs(10);
/// Generous: the broker idles at ~15 MiB; the point is "bounded", not tight.
const RSS_BOUND_KIB: u64 = 256 * 1024;

/// A Metadata round trip on a fresh connection (a long-lived idle one
/// would rightly be closed by connections.max.idle.ms in these tests).
fn healthy_round_trip(broker: &mut TestBroker, after: &str) {
    broker.assert_running();
    let mut client = RawClient::connect(broker.addr()).unwrap();
    client
        .stream()
        .set_read_timeout(Some(HEALTHY_DEADLINE))
        .unwrap();
    let md = client
        .metadata(None)
        .unwrap_or_else(|e| panic!("healthy client failed {after}: {e:#}"));
    assert_eq!(md.brokers.len(), 1, "{after}");
}

fn rss(broker: &TestBroker, what: &str) -> u64 {
    let kib = broker.rss_kib().expect("broker VmRSS");
    eprintln!("broker VmRSS {what}: {} KiB", kib);
    assert!(kib < RSS_BOUND_KIB, "RSS {kib} KiB {what}");
    kib
}

/// True once the peer has closed `stream` (EOF or reset).
fn closed(stream: &mut TcpStream) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

#[test]
fn five_thousand_idle_connections_stay_cheap_and_are_closed_when_idle() {
    let mut broker = TestBroker::start(&[("connections.max.idle.ms", "8000")]);
    let before = rss(&broker, "before");
    let mut idle: Vec<TcpStream> = (0..5_000)
        .map(|i| {
            TcpStream::connect(broker.addr()).unwrap_or_else(|e| panic!("connection {i}: {e}"))
        })
        .collect();
    // Every connection has been accepted once a later request is answered
    // (one acceptor, in order).
    healthy_round_trip(&mut broker, "with 5000 idle connections");
    let during = rss(&broker, "with 5000 idle connections");
    eprintln!(
        "idle connections cost {} KiB each",
        (during.saturating_sub(before)) / 5_000
    );
    // connections.max.idle.ms closes them; the healthy one, which keeps
    // talking, stays.
    assert!(
        wait_until(Duration::from_secs(30), || {
            healthy_round_trip(&mut broker, "while idle ones close");
            idle.retain_mut(|s| !closed(s));
            idle.is_empty()
        }),
        "{} idle connections not closed by connections.max.idle.ms",
        idle.len()
    );
    healthy_round_trip(&mut broker, "after idle connections closed");
}

#[test]
fn max_connections_refuses_the_excess_and_says_so() {
    let mut broker = TestBroker::start(&[("max.connections", "50")]);
    // Each held connection is served, so each has its permit. (The
    // harness's readiness probe may hold one for a moment: retry.)
    let mut held: Vec<RawClient> = (0..50)
        .map(|i| {
            let mut client = None;
            let served = wait_until(HEALTHY_DEADLINE, || {
                let mut c = RawClient::connect(broker.addr()).unwrap();
                let ok = c.metadata(None).is_ok();
                client = ok.then_some(c);
                ok
            });
            assert!(served, "connection {i} below max.connections refused");
            client.unwrap()
        })
        .collect();
    let mut excess: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(broker.addr()).unwrap())
        .collect();
    assert!(wait_until(HEALTHY_DEADLINE, || excess
        .iter_mut()
        .all(closed)));
    assert!(broker
        .stderr_log()
        .contains("connection refused: max.connections reached"));
    // Held connections keep working; freed permits admit new ones.
    held[0].metadata(None).unwrap();
    held.truncate(40);
    assert!(wait_until(HEALTHY_DEADLINE, || RawClient::connect(
        broker.addr()
    )
    .and_then(|mut c| c.metadata(None))
    .is_ok()));
    healthy_round_trip(&mut broker, "after refusing the excess");
}

#[test]
fn a_slowloris_sender_is_closed_after_the_request_read_timeout() {
    let mut broker = TestBroker::start(&[("socket.request.read.timeout.ms", "3000")]);
    let mut slow = TcpStream::connect(broker.addr()).unwrap();
    slow.write_all(&100i32.to_be_bytes()).unwrap();
    let start = Instant::now();
    let mut sent = 0;
    // One byte a second until the broker hangs up.
    let closed_in_time = wait_until(Duration::from_secs(20), || {
        if start.elapsed() >= Duration::from_secs(sent) {
            sent += 1;
            let _ = slow.write_all(&[0]);
        }
        healthy_round_trip(&mut broker, "during slowloris");
        closed(&mut slow)
    });
    assert!(closed_in_time, "slowloris connection still open");
    assert!(sent >= 2, "closed before it was slow: {sent} bytes");
    let log = broker.stderr_log();
    assert!(
        log.contains("socket.request.read.timeout.ms"),
        "no log line for the slow request"
    );
    healthy_round_trip(&mut broker, "after slowloris");
}

#[test]
fn a_client_that_never_reads_is_throttled_then_closed() {
    let mut broker = TestBroker::start(&[("connections.max.idle.ms", "4000")]);
    let before = rss(&broker, "before");
    let mut deaf = RawClient::connect(broker.addr()).unwrap();
    let request = {
        let header = deaf.header::<kafka_protocol::messages::MetadataRequest>(12);
        let body = kafka_protocol::messages::MetadataRequest::default();
        let payload = RawClient::encode_request(&header, &body).unwrap();
        let mut framed = (payload.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&payload);
        framed
    };
    let mut stream = deaf.stream().try_clone().unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    // Pipeline requests without reading a single response, until the
    // broker stops reading (our writes time out) or closes the connection.
    let mut requests = 0u64;
    while stream.write_all(&request).is_ok() {
        requests += 1;
        assert!(requests < 10_000_000, "the broker never pushed back");
    }
    eprintln!(
        "client that never reads got {requests} requests in before the broker stopped reading"
    );
    let during = rss(&broker, "with a client that never reads");
    assert!(during < before + 64 * 1024, "{during} KiB vs {before} KiB");
    healthy_round_trip(&mut broker, "while a client does not read");
    assert!(
        wait_until(Duration::from_secs(20), || {
            let log = broker.stderr_log();
            log.contains("client is not reading its responses")
        }),
        "no log line for the client that never reads"
    );
    healthy_round_trip(&mut broker, "after closing it");
}

#[test]
fn huge_length_prefixes_never_allocate() {
    let mut broker = TestBroker::start(&[]);
    let before = rss(&broker, "before");
    // 2 GiB - 1: over socket.request.max.bytes, refused on the prefix.
    let mut huge = TcpStream::connect(broker.addr()).unwrap();
    huge.write_all(&i32::MAX.to_be_bytes()).unwrap();
    assert!(wait_until(HEALTHY_DEADLINE, || closed(&mut huge)));
    // Just under the limit, then nothing: nothing is set aside up front.
    let mut pending: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = TcpStream::connect(broker.addr()).unwrap();
            s.write_all(&(100 * 1024 * 1024 - 1i32).to_be_bytes())
                .unwrap();
            s.write_all(&[0; 100]).unwrap();
            s
        })
        .collect();
    healthy_round_trip(&mut broker, "with 50 pending 100 MiB frames");
    let during = rss(&broker, "with 50 pending 100 MiB frames");
    assert!(during < before + 64 * 1024, "{during} KiB vs {before} KiB");
    assert!(pending.iter_mut().all(|s| !closed(s)));
    assert!(broker.stderr_log().contains("closing connection"));
}
