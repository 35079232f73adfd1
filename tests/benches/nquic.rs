//! nQUIC versus quinn with rustls, on loopback, in the same run: throughput (1 GiB on one
//! stream and on four streams) and handshake latency, for both AEADs. Prints figures; it
//! never asserts on a time. Run with `cargo bench -p photomesh-tests --bench nquic`.
//!
//! Environment: `NQUIC_BENCH_MIB` (default 1024) is the bytes per transfer, `NQUIC_BENCH_RUNS`
//! (default 5) the runs per figure (the median is printed), `NQUIC_BENCH_HANDSHAKES`
//! (default 200) the handshakes per latency figure.

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result};
use photomesh::net::transport;
use photomesh_protocol::nquic::{self, NoiseKey, Suite, TrustSet};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn_proto::{
    Side,
    crypto::{ClientConfig as _, ServerConfig as _},
    transport_parameters::TransportParameters,
};
use rustls::crypto::{CryptoProvider, ring as rustls_ring};

const CLIENT_KEY: [u8; 32] = [0xc1; 32];
const SERVER_KEY: [u8; 32] = [0x5e; 32];
const MIB: u64 = 1024 * 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stack {
    Nquic(Suite),
    Rustls(Suite),
}

impl Stack {
    fn name(self) -> String {
        match self {
            Self::Nquic(suite) => format!("nQUIC {}", suite.noise_cipher()),
            Self::Rustls(Suite::ChaChaPoly) => "quinn+rustls CHACHA20_POLY1305".into(),
            Self::Rustls(Suite::AesGcm) => "quinn+rustls AES_256_GCM".into(),
        }
    }
}

struct Pair {
    server: quinn::Endpoint,
    client: quinn::Endpoint,
    client_config: quinn::ClientConfig,
    addr: SocketAddr,
}

fn main() -> Result<()> {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing to run.
    if !std::env::args().any(|a| a == "--bench") {
        println!("nquic bench: run with `cargo bench -p photomesh-tests --bench nquic`");
        return Ok(());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    for suite in [Suite::AesGcm, Suite::ChaChaPoly] {
        let mut fresh = (0..200)
            .map(|_| sans_io_handshake(suite, &sans_io_configs()))
            .collect::<Result<Vec<_>>>()?;
        // A kept client config remembers `ss` with its peer (NQUIC.md §8), as the node's do.
        let kept = sans_io_configs();
        let mut reused = (0..200)
            .map(|_| sans_io_handshake(suite, &kept))
            .collect::<Result<Vec<_>>>()?;
        println!(
            "nQUIC {} handshake without quinn (both sides, one thread): {:.0} µs median, \
             {:.0} µs with a kept client config",
            suite.noise_cipher(),
            median_duration(&mut fresh).as_secs_f64() * 1e6,
            median_duration(&mut reused).as_secs_f64() * 1e6
        );
    }
    let total = photomesh_tests::env_u64("NQUIC_BENCH_MIB", 1024) * MIB;
    let runs = photomesh_tests::env_u64("NQUIC_BENCH_RUNS", 5);
    let handshakes = photomesh_tests::env_u64("NQUIC_BENCH_HANDSHAKES", 200);
    let stacks = [
        Stack::Nquic(Suite::AesGcm),
        Stack::Rustls(Suite::AesGcm),
        Stack::Nquic(Suite::ChaChaPoly),
        Stack::Rustls(Suite::ChaChaPoly),
    ];
    println!(
        "loopback, {} MiB per transfer, median of {runs} runs; {handshakes} handshakes",
        total / MIB
    );
    println!("MiB/s wall clock (CPU ms per GiB, both endpoints); handshake: connect to Connected");
    println!(
        "{:<32} {:>16} {:>16} {:>14}",
        "stack", "1 stream", "4 streams", "handshake µs"
    );
    let pairs = stacks
        .iter()
        .map(|stack| pair(*stack))
        .collect::<Result<Vec<_>>>()?;
    let mut one = vec![Vec::new(); stacks.len()];
    let mut four = vec![Vec::new(); stacks.len()];
    let mut latencies = vec![Vec::new(); stacks.len()];
    // Interleave stacks and shapes so that load from elsewhere on the machine hits all of
    // them alike.
    for _ in 0..runs {
        for (i, pair) in pairs.iter().enumerate() {
            one[i].push(throughput(pair, 1, total).await?);
            four[i].push(throughput(pair, 4, total).await?);
            latencies[i].extend(handshake_latencies(pair, handshakes / runs.max(1)).await?);
        }
    }
    for (i, stack) in stacks.iter().enumerate() {
        let figure = |runs: &[Throughput]| {
            let mut speed: Vec<f64> = runs.iter().map(|t| t.mib_per_s).collect();
            let mut cpu: Vec<f64> = runs.iter().map(|t| t.cpu_ms_per_gib).collect();
            format!(
                "{:>6.0} ({:>5.0})",
                median_f64(&mut speed),
                median_f64(&mut cpu)
            )
        };
        println!(
            "{:<32} {:>16} {:>16} {:>14.0}",
            stack.name(),
            figure(&one[i]),
            figure(&four[i]),
            median_duration(&mut latencies[i]).as_secs_f64() * 1e6
        );
    }
    for pair in pairs {
        pair.client.close(0u32.into(), b"");
        pair.server.close(0u32.into(), b"");
    }
    Ok(())
}

/// This process's user + system CPU time, from `/proc/self/stat` (Linux; 10 ms ticks).
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

/// A client and a server nQUIC config for the bench's two keys.
fn sans_io_configs() -> (Arc<nquic::ClientConfig>, Arc<nquic::ServerConfig>) {
    let trust: BTreeSet<[u8; 32]> = [*NoiseKey::from_private(&CLIENT_KEY).as_bytes()].into();
    let server_config = Arc::new(nquic::ServerConfig::new(
        SERVER_KEY,
        Arc::new(trust),
        transport::os_random(),
    ));
    let client_config = Arc::new(
        nquic::ClientConfig::new(CLIENT_KEY, transport::os_random())
            .with_peer(NoiseKey::from_private(&SERVER_KEY)),
    );
    (client_config, server_config)
}

/// The CPU cost of one complete nQUIC handshake, both sides, without quinn or sockets.
fn sans_io_handshake(
    suite: Suite,
    (client_config, server_config): &(Arc<nquic::ClientConfig>, Arc<nquic::ServerConfig>),
) -> Result<Duration> {
    let params = |side| TransportParameters::read(side, &mut &[][..]);
    let (client_config, server_config) = (client_config.clone(), server_config.clone());
    let start = Instant::now();
    let mut client = client_config.start_session(suite.version(), "x", &params(Side::Client)?)?;
    let mut server = server_config.start_session(suite.version(), &params(Side::Server)?);
    let mut flight = Vec::new();
    client.write_handshake(&mut flight);
    server.read_handshake(&flight)?;
    let mut initial = Vec::new();
    let mut handshake = Vec::new();
    server.write_handshake(&mut initial);
    server.write_handshake(&mut handshake);
    client.read_handshake(&initial)?;
    let mut finished = Vec::new();
    client.write_handshake(&mut Vec::new());
    client.write_handshake(&mut finished);
    client.read_handshake(&handshake)?;
    server.read_handshake(&finished)?;
    anyhow::ensure!(!client.is_handshaking() && !server.is_handshaking());
    Ok(start.elapsed())
}

/// Times `n` sequential handshakes, from `connect` to the client's `Connected`.
async fn handshake_latencies(pair: &Pair, n: u64) -> Result<Vec<Duration>> {
    let server = pair.server.clone();
    let acceptor = tokio::spawn(async move {
        for _ in 0..n {
            let Some(incoming) = server.accept().await else {
                break;
            };
            if let Ok(connection) = incoming.await {
                drop(connection);
            }
        }
    });
    let mut latencies = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        let connection = pair
            .client
            .connect_with(pair.client_config.clone(), pair.addr, "localhost")?
            .await
            .context("handshake")?;
        latencies.push(start.elapsed());
        connection.close(0u32.into(), b"");
    }
    acceptor.await?;
    Ok(latencies)
}

fn median_f64(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn median_duration(values: &mut [Duration]) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// One transfer's figures.
#[derive(Clone, Copy)]
struct Throughput {
    /// Wall-clock throughput.
    mib_per_s: f64,
    /// CPU time of the whole process (both endpoints) per GiB moved.
    cpu_ms_per_gib: f64,
}

/// Sends `total` bytes from client to server split over `streams` streams.
async fn throughput(pair: &Pair, streams: u64, total: u64) -> Result<Throughput> {
    let server = pair.server.clone();
    let sink = tokio::spawn(async move {
        let connection = server
            .accept()
            .await
            .context("endpoint closed")?
            .await
            .context("server handshake")?;
        let mut readers = Vec::new();
        for _ in 0..streams {
            let mut recv = connection.accept_uni().await.context("accept_uni")?;
            readers.push(tokio::spawn(async move {
                let mut n = 0u64;
                while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
                    n += chunk.bytes.len() as u64;
                }
                anyhow::Ok(n)
            }));
        }
        let mut received = 0;
        for reader in readers {
            received += reader.await?.context("reading")?;
        }
        // Keep the connection until the client has seen every byte acknowledged.
        connection.closed().await;
        anyhow::Ok(received)
    });
    let connection = pair
        .client
        .connect_with(pair.client_config.clone(), pair.addr, "localhost")?
        .await
        .context("client handshake")?;
    let start = Instant::now();
    let cpu_start = cpu_time();
    let per_stream = total / streams;
    let mut writers = Vec::new();
    for _ in 0..streams {
        let mut send = connection.open_uni().await.context("open_uni")?;
        writers.push(tokio::spawn(async move {
            let chunk = bytes::Bytes::from(vec![0u8; 1024 * 1024]);
            let mut sent = 0;
            while sent < per_stream {
                let n = (per_stream - sent).min(chunk.len() as u64) as usize;
                send.write_chunk(chunk.slice(..n)).await.context("write")?;
                sent += n as u64;
            }
            send.finish()?;
            send.stopped()
                .await
                .context("waiting for acknowledgement")?;
            anyhow::Ok(())
        }));
    }
    for writer in writers {
        writer.await??;
    }
    let elapsed = start.elapsed();
    connection.close(0u32.into(), b"done");
    let received = sink.await??;
    let cpu = cpu_time().saturating_sub(cpu_start);
    anyhow::ensure!(received == per_stream * streams, "lost bytes: {received}");
    let gib = received as f64 / (1024.0 * MIB as f64);
    Ok(Throughput {
        mib_per_s: received as f64 / MIB as f64 / elapsed.as_secs_f64(),
        cpu_ms_per_gib: cpu.as_secs_f64() * 1e3 / gib,
    })
}

fn pair(stack: Stack) -> Result<Pair> {
    let any: SocketAddr = "127.0.0.1:0".parse()?;
    let (server, client, client_config) = match stack {
        Stack::Nquic(suite) => {
            let trust: BTreeSet<[u8; 32]> =
                [*NoiseKey::from_private(&CLIENT_KEY).as_bytes()].into();
            let trust: Arc<dyn TrustSet> = Arc::new(trust);
            let server_config =
                transport::server_config(SERVER_KEY, trust, None, None, transport::os_random());
            let server = transport::endpoint(any, Some(server_config))?;
            let client = transport::endpoint(any, None)?;
            let config = transport::client_config(
                CLIENT_KEY,
                NoiseKey::from_private(&SERVER_KEY),
                suite,
                None,
                transport::os_random(),
            );
            (server, client, config)
        }
        Stack::Rustls(suite) => {
            let tls_suite = match suite {
                Suite::ChaChaPoly => rustls_ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
                Suite::AesGcm => rustls_ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
            };
            // The chosen suite first; AES-128-GCM is listed only because quinn needs it for
            // Initial packets. The server follows the client's order.
            let provider = Arc::new(CryptoProvider {
                cipher_suites: vec![
                    tls_suite,
                    rustls_ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
                ],
                ..rustls_ring::default_provider()
            });
            let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
            let cert_der = rustls::pki_types::CertificateDer::from(cert.cert.der().to_vec());
            let key_der =
                rustls::pki_types::PrivateKeyDer::Pkcs8(cert.key_pair.serialize_der().into());
            let server_tls = rustls::ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_no_client_auth()
                .with_single_cert(vec![cert_der.clone()], key_der)?;
            let server_config =
                quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(server_tls)?));
            let server = quinn::Endpoint::server(server_config, any)?;
            let mut roots = rustls::RootCertStore::empty();
            roots.add(cert_der)?;
            let client_tls = rustls::ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(&[&rustls::version::TLS13])?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let config =
                quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(client_tls)?));
            let client = quinn::Endpoint::client(any)?;
            (server, client, config)
        }
    };
    let addr = server.local_addr()?;
    Ok(Pair {
        server,
        client,
        client_config,
        addr,
    })
}
