//! The local runner's HTTP server against clients that hold on: idle connections, headers or
//! bodies trickled in, floods of unsigned requests, oversized bodies. Bounded counts on
//! loopback, limits set small through the settings so each case takes about a second.

use std::time::{Duration, Instant};

use cosell::config::{Config, Source};
use cosell_cli::local::runtime::{Runtime, RuntimeOptions};
use cosell_cli::local::standins::{overlay, Standins};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn start(extra: &[(&str, &str)]) -> (Standins, Runtime, tempfile::TempDir) {
    let loopback = "127.0.0.1:0".parse().unwrap();
    let s = Standins::start(loopback, loopback).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut more: Vec<(&str, String)> = vec![("COSELL_LISTEN", "127.0.0.1:0".into())];
    more.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    let config = Config::load(&Source::from_pairs(overlay(s.settings(dir.path()), &more))).unwrap();
    let options = RuntimeOptions {
        register_own_url: true,
        schedules: false,
        ..RuntimeOptions::default()
    };
    let runtime = Runtime::start(&config, options).await.unwrap();
    (s, runtime, dir)
}

/// Reads until the server closes the connection (or `within` passes): what it sent.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    read_until(stream, within, None).await
}

/// Reads until the server closes the connection or `needle` has arrived (`None` when
/// `within` passes first).
async fn read_until(
    stream: &mut TcpStream,
    within: Duration,
    needle: Option<&str>,
) -> Option<String> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(String::from_utf8_lossy(&got).into_owned()),
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&got);
                if needle.is_some_and(|n| text.contains(n)) {
                    return Some(text.into_owned());
                }
            }
        }
    }
}

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_idle_connections_do_not_stop_a_valid_delivery() {
    let (s, runtime, _dir) = start(&[]).await;
    let mut idle = Vec::new();
    for _ in 0..500 {
        idle.push(TcpStream::connect(runtime.addr()).await.unwrap());
    }
    let started = Instant::now();
    s.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let deliveries = s.pc.wait_for_deliveries(1, Duration::from_secs(2)).await;
    let took = started.elapsed();
    assert_eq!(deliveries.len(), 1, "no delivery answered within 2 s");
    assert_eq!(deliveries[0].last_status, Some(200), "{deliveries:?}");
    println!(
        "delivery answered in {took:?} with {} idle connections open",
        idle.len()
    );
    drop(idle);
    runtime.shutdown().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_without_a_descriptor_and_idle_ones_are_closed() {
    let (s, runtime, _dir) = start(&[
        ("COSELL_MAX_CONNECTIONS", "50"),
        ("COSELL_HEADER_TIMEOUT", "1s"),
    ])
    .await;
    let before = open_descriptors();
    let mut idle = Vec::new();
    for _ in 0..200 {
        idle.push(TcpStream::connect(runtime.addr()).await.unwrap());
    }
    // Our 200 client ends, and the server's ends of at most 50 of them.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let held = open_descriptors() - before;
    assert!(
        held <= 200 + 50 + 10,
        "{held} descriptors for 200 connections"
    );
    println!("200 idle connections with a cap of 50 hold {held} descriptors in this process");
    // Each sends nothing: closed after the header timeout, so a delivery gets in.
    s.pc.create_incoming_referral("Contoso ERP", "Contoso Ltd");
    let deliveries = s.pc.wait_for_deliveries(1, Duration::from_secs(10)).await;
    assert_eq!(
        deliveries.first().and_then(|d| d.last_status),
        Some(200),
        "{deliveries:?}"
    );
    drop(idle);
    runtime.shutdown().await;
    s.shutdown().await;
}

#[tokio::test]
async fn headers_that_do_not_arrive_in_time_close_the_connection() {
    let (s, runtime, _dir) = start(&[("COSELL_HEADER_TIMEOUT", "1s")]).await;
    // Trickled: a byte every 200 ms, never the end of the headers.
    let mut slow = TcpStream::connect(runtime.addr()).await.unwrap();
    slow.write_all(b"POST /partner-center/webhook HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = slow.into_split();
    let trickle = tokio::spawn(async move {
        for _ in 0..50 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if writer.write_all(b"X").await.is_err() {
                return;
            }
        }
    });
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "a trickled header kept its connection for 5 s"
    );
    trickle.abort();

    // An idle kept-alive connection is closed the same way after its first answer.
    let mut kept = TcpStream::connect(runtime.addr()).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut kept, Duration::from_secs(5)).await;
    let answer = answer.expect("an idle keep-alive connection stayed open for 5 s");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    runtime.shutdown().await;
    s.shutdown().await;
}

#[tokio::test]
async fn a_trickled_body_gets_a_408_and_requests_over_the_cap_a_503() {
    let (s, runtime, _dir) = start(&[
        ("COSELL_REQUEST_TIMEOUT", "1s"),
        ("COSELL_MAX_REQUESTS", "1"),
    ])
    .await;
    let mut slow = TcpStream::connect(runtime.addr()).await.unwrap();
    slow.write_all(
        b"POST /partner-center/webhook HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Event",
    )
    .await
    .unwrap();
    // While it holds the one request slot, another delivery is turned away at once.
    let http = reqwest::Client::new();
    let mut overloaded = None;
    for _ in 0..20 {
        let resp = http
            .post(runtime.intake_url())
            .body("{}")
            .send()
            .await
            .unwrap();
        if resp.status() == 503 {
            overloaded = Some(resp.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let overloaded = overloaded.expect("a request over the cap was not refused");
    assert_eq!(overloaded["error"]["code"], "overloaded");

    let answer = read_until(&mut slow, Duration::from_secs(5), Some("request_timeout"))
        .await
        .expect("the trickled body was never answered");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("request_timeout"), "{answer}");
    runtime.shutdown().await;
    s.shutdown().await;
}

#[tokio::test]
async fn oversized_bodies_get_a_json_413() {
    let (s, runtime, _dir) = start(&[]).await;
    let http = reqwest::Client::new();
    for size in [100 * 1024, 3 * 1024 * 1024] {
        let resp = http
            .post(runtime.intake_url())
            .body(vec![b'{'; size])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 413, "{size} bytes");
        let body: Value = resp.json().await.expect("a JSON 413");
        assert_eq!(body["error"]["code"], "too_large", "{size} bytes");
    }
    runtime.shutdown().await;
    s.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_unsigned_requests_with_distinct_urls_do_not_grow_the_process() {
    let (s, runtime, _dir) = start(&[]).await;
    let cert_url = s.pc_url().join("cert/standin.cer").unwrap();
    let http = reqwest::Client::new();
    let body = r#"{"EventName":"referral-updated","ResourceUri":"https://x/referrals/r1"}"#;
    let send = |n: usize| {
        let http = http.clone();
        let url = runtime.intake_url();
        // Distinct queries and fragments: each once made a cache entry of its own.
        let cert = if n.is_multiple_of(2) {
            format!("{cert_url}?n={n}")
        } else {
            format!("{cert_url}#n{n}")
        };
        async move {
            let resp = http
                .post(url)
                .header("authorization", "Signature AAAA")
                .header("x-ms-certificate-url", cert)
                .header("x-ms-signature-algorithm", "rsa-sha256")
                .body(body)
                .send()
                .await
                .unwrap();
            resp.status().as_u16()
        }
    };
    let run = |from: usize, count: usize| {
        let send = &send;
        async move {
            let mut statuses = Vec::new();
            // Sixteen at a time.
            for chunk in (from..from + count).collect::<Vec<_>>().chunks(16) {
                let mut set = tokio::task::JoinSet::new();
                for n in chunk {
                    set.spawn(send(*n));
                }
                statuses.extend(set.join_all().await);
            }
            statuses
        }
    };
    // Warm up pools and allocator, then measure.
    assert!(run(0, 500).await.iter().all(|s| *s == 401));
    let before = resident_bytes();
    let started = Instant::now();
    let statuses = run(500, 5000).await;
    let after = resident_bytes();
    assert!(statuses.iter().all(|s| *s == 401));
    let grown = after.saturating_sub(before);
    println!(
        "5000 unsigned requests in {:?}: RSS {:.1} MB -> {:.1} MB (+{:.1} MB)",
        started.elapsed(),
        before as f64 / 1e6,
        after as f64 / 1e6,
        grown as f64 / 1e6
    );
    assert!(grown < 8_000_000, "the process grew by {grown} bytes");
    runtime.shutdown().await;
    s.shutdown().await;
}
