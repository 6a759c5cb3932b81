//! Cluster DNS: a small authoritative server for the cluster domain (pods' resolv.conf is the
//! kubelet's: [`crate::kubelet::resolv_conf`]).
//!
//! Names answered (`<domain>` is `cluster.local` by default):
//! - `<svc>.<ns>.svc.<domain>`: A with the ClusterIP; for a headless service one A per ready
//!   endpoint; CNAME for an ExternalName service;
//! - `<hostname>.<svc>.<ns>.svc.<domain>`: the endpoint of a headless service with that hostname;
//! - `<a-b-c-d>.<ns>.pod.<domain>`: A `a.b.c.d`;
//! - the intermediate names (`<ns>.svc.<domain>`, ...) exist without records (NODATA);
//! - anything else in the domain: NXDOMAIN (with the SOA for negative caching).
//!
//! Names outside the domain are forwarded to the configured upstream, or get NXDOMAIN.
//! Messages are parsed and built with `hickory-proto`; the transport (UDP and TCP) is ours.
//! Lookups are pure functions of a [`ServiceIndex`], so they are unit-tested without a cluster.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, CNAME, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::reflector::ObjectRef;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info, warn};

use crate::servicecache::{ServiceCache, SERVICE_NAME_LABEL};

/// Settings of the DNS server.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Where to listen (UDP and TCP), e.g. the pod bridge's gateway address on port 53. When
    /// the address does not exist yet (the bridge comes with the first pod), binding is retried.
    pub listen: SocketAddr,
    /// The cluster domain.
    pub domain: String,
    /// Where names outside the cluster domain go; `None`: they get NXDOMAIN.
    pub upstream: Option<SocketAddr>,
    /// TTL of the answers, in seconds.
    pub ttl: u32,
}

impl DnsConfig {
    pub fn new(listen: SocketAddr) -> DnsConfig {
        DnsConfig {
            listen,
            domain: "cluster.local".into(),
            upstream: None,
            ttl: 5,
        }
    }
}

/// What a name is, as far as the cluster domain goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameAnswer {
    /// The name has these addresses.
    A(Vec<Ipv4Addr>),
    /// The name is an alias (ExternalName service).
    Cname(String),
    /// The name exists but has no records.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// The name is not in the cluster domain.
    Outside,
}

/// The cluster objects a lookup reads.
pub trait ServiceIndex: Send + Sync {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>>;
    fn endpoint_slices(&self, namespace: &str, service: &str) -> Vec<Arc<EndpointSlice>>;
}

impl ServiceIndex for ServiceCache {
    fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
        self.services.get(&ObjectRef::new(name).within(namespace))
    }

    fn endpoint_slices(&self, namespace: &str, service: &str) -> Vec<Arc<EndpointSlice>> {
        self.slices
            .state()
            .into_iter()
            .filter(|s| slice_of(s, namespace, service))
            .collect()
    }
}

/// Whether `slice` belongs to service `namespace/service`.
pub fn slice_of(slice: &EndpointSlice, namespace: &str, service: &str) -> bool {
    slice.metadata.namespace.as_deref() == Some(namespace)
        && slice
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(SERVICE_NAME_LABEL))
            .is_some_and(|s| s == service)
}

/// Ready IPv4 endpoints of a service (optionally only the one with `hostname`), sorted.
fn ready_endpoints(slices: &[Arc<EndpointSlice>], hostname: Option<&str>) -> Vec<Ipv4Addr> {
    let mut ips: Vec<Ipv4Addr> = slices
        .iter()
        .filter(|s| s.address_type == "IPv4")
        .flat_map(|s| s.endpoints.iter())
        .filter(|e| e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true))
        .filter(|e| hostname.is_none() || e.hostname.as_deref() == hostname)
        .filter_map(|e| e.addresses.first()?.parse().ok())
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// Answer for `name` (any case, with or without the final dot) in `domain`.
pub fn resolve(domain: &str, name: &str, index: &dyn ServiceIndex) -> NameAnswer {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let rest = if name == domain {
        ""
    } else if let Some(r) = name.strip_suffix(&format!(".{domain}")) {
        r
    } else {
        return NameAnswer::Outside;
    };
    let labels: Vec<&str> = if rest.is_empty() {
        vec![]
    } else {
        rest.split('.').collect()
    };
    match labels.as_slice() {
        [] | ["svc"] | [_, "svc"] | ["pod"] | [_, "pod"] => NameAnswer::NoData,
        [svc, ns, "svc"] => {
            let Some(service) = index.service(ns, svc) else {
                return NameAnswer::NxDomain;
            };
            let spec = service.spec.clone().unwrap_or_default();
            if spec.type_.as_deref() == Some("ExternalName") {
                return match spec.external_name {
                    Some(n) if !n.is_empty() => NameAnswer::Cname(n),
                    _ => NameAnswer::NoData,
                };
            }
            match spec.cluster_ip.as_deref() {
                Some("None") | None | Some("") => {
                    let ips = ready_endpoints(&index.endpoint_slices(ns, svc), None);
                    if ips.is_empty() {
                        NameAnswer::NxDomain
                    } else {
                        NameAnswer::A(ips)
                    }
                }
                Some(ip) => match ip.parse() {
                    Ok(ip) => NameAnswer::A(vec![ip]),
                    Err(_) => NameAnswer::NoData,
                },
            }
        }
        [host, svc, ns, "svc"] => {
            let ips = ready_endpoints(&index.endpoint_slices(ns, svc), Some(host));
            if ips.is_empty() {
                NameAnswer::NxDomain
            } else {
                NameAnswer::A(ips)
            }
        }
        [ip, _ns, "pod"] => match ip.replace('-', ".").parse() {
            Ok(ip) => NameAnswer::A(vec![ip]),
            Err(_) => NameAnswer::NxDomain,
        },
        _ => NameAnswer::NxDomain,
    }
}

/// What to do with one request.
#[derive(Debug)]
pub enum Handled {
    Reply(Vec<u8>),
    /// Outside the cluster domain and an upstream is configured: forward the request as is.
    Forward,
}

fn soa(domain: &Name, ttl: u32) -> Record {
    let mname = Name::from_ascii("ns.dns")
        .and_then(|n| n.append_domain(domain))
        .unwrap_or_else(|_| domain.clone());
    let rname = Name::from_ascii("hostmaster")
        .and_then(|n| n.append_domain(domain))
        .unwrap_or_else(|_| domain.clone());
    Record::from_rdata(
        domain.clone(),
        ttl,
        RData::SOA(SOA::new(mname, rname, 1, 7200, 1800, 86400, ttl)),
    )
}

/// Handle one DNS message; `None` when it cannot even be parsed.
pub fn handle(request: &[u8], cfg: &DnsConfig, index: &dyn ServiceIndex) -> Option<Handled> {
    let req = Message::from_vec(request).ok()?;
    let mut resp = Message::new();
    resp.set_id(req.id())
        .set_message_type(MessageType::Response)
        .set_op_code(req.op_code())
        .set_recursion_desired(req.recursion_desired())
        .set_recursion_available(cfg.upstream.is_some());
    if req.message_type() != MessageType::Query
        || req.op_code() != OpCode::Query
        || req.queries().len() != 1
    {
        resp.set_response_code(ResponseCode::NotImp);
        return resp.to_vec().ok().map(Handled::Reply);
    }
    let query = req.queries()[0].clone();
    let qname = query.name().clone();
    let domain = Name::from_ascii(format!("{}.", cfg.domain.trim_end_matches('.'))).ok()?;
    let answer = resolve(&cfg.domain, &qname.to_ascii(), index);
    if answer == NameAnswer::Outside && cfg.upstream.is_some() {
        return Some(Handled::Forward);
    }
    resp.add_query(query.clone());
    resp.set_authoritative(answer != NameAnswer::Outside);
    let qtype = query.query_type();
    match answer {
        NameAnswer::A(ips) => {
            if matches!(qtype, RecordType::A | RecordType::ANY) {
                for ip in ips {
                    resp.add_answer(Record::from_rdata(qname.clone(), cfg.ttl, RData::A(A(ip))));
                }
            } else {
                resp.add_name_server(soa(&domain, cfg.ttl));
            }
        }
        NameAnswer::Cname(target) => {
            let target = Name::from_ascii(format!("{}.", target.trim_end_matches('.'))).ok()?;
            resp.add_answer(Record::from_rdata(
                qname.clone(),
                cfg.ttl,
                RData::CNAME(CNAME(target)),
            ));
        }
        NameAnswer::NoData => {
            if qtype == RecordType::SOA && qname.to_lowercase() == domain {
                resp.add_answer(soa(&domain, cfg.ttl));
            } else {
                resp.add_name_server(soa(&domain, cfg.ttl));
            }
        }
        NameAnswer::NxDomain | NameAnswer::Outside => {
            resp.set_response_code(ResponseCode::NXDomain);
            if answer == NameAnswer::NxDomain {
                resp.add_name_server(soa(&domain, cfg.ttl));
            }
        }
    }
    resp.to_vec().ok().map(Handled::Reply)
}

async fn forward_udp(upstream: SocketAddr, request: &[u8]) -> anyhow::Result<Vec<u8>> {
    let bind: SocketAddr = if upstream.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let sock = tokio::net::UdpSocket::bind(bind).await?;
    sock.connect(upstream).await?;
    sock.send(request).await?;
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(3), sock.recv(&mut buf))
        .await
        .context("upstream DNS timed out")??;
    buf.truncate(n);
    Ok(buf)
}

async fn answer(request: &[u8], cfg: &DnsConfig, index: &dyn ServiceIndex) -> Option<Vec<u8>> {
    match handle(request, cfg, index)? {
        Handled::Reply(r) => Some(r),
        Handled::Forward => {
            let upstream = cfg.upstream?;
            match forward_udp(upstream, request).await {
                Ok(r) => Some(r),
                Err(e) => {
                    debug!(error = %format!("{e:#}"), "forwarding a DNS query");
                    let mut m = Message::from_vec(request).ok()?;
                    m.set_message_type(MessageType::Response)
                        .set_response_code(ResponseCode::ServFail);
                    m.to_vec().ok()
                }
            }
        }
    }
}

/// Bind UDP and TCP on `addr`, retrying while the address does not exist yet.
async fn bind(addr: SocketAddr) -> (tokio::net::UdpSocket, tokio::net::TcpListener) {
    let mut logged = false;
    loop {
        let udp = tokio::net::UdpSocket::bind(addr).await;
        // The same port for TCP (with port 0, the one UDP got).
        let tcp = match &udp {
            Ok(u) => match u.local_addr() {
                Ok(a) => tokio::net::TcpListener::bind(a).await,
                Err(e) => Err(e),
            },
            Err(_) => Err(std::io::Error::other("udp not bound")),
        };
        match (udp, tcp) {
            (Ok(u), Ok(t)) => return (u, t),
            (Err(e), _) | (_, Err(e)) => {
                if !logged {
                    info!(%addr, error = %e, "DNS server waiting for its address");
                    logged = true;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// A running DNS server.
pub struct DnsServer {
    pub local_addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl DnsServer {
    /// Bind (waiting for the address if needed) and serve until dropped or stopped.
    pub async fn start(cfg: DnsConfig, index: Arc<dyn ServiceIndex>) -> DnsServer {
        let (udp, tcp) = bind(cfg.listen).await;
        let local_addr = udp.local_addr().unwrap_or(cfg.listen);
        info!(%local_addr, domain = %cfg.domain, "cluster DNS listening");
        let cfg = Arc::new(cfg);
        let task = tokio::spawn(serve(Arc::new(udp), tcp, cfg, index));
        DnsServer { local_addr, task }
    }

    pub fn stop(&self) {
        self.task.abort();
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    udp: Arc<tokio::net::UdpSocket>,
    tcp: tokio::net::TcpListener,
    cfg: Arc<DnsConfig>,
    index: Arc<dyn ServiceIndex>,
) {
    let mut tasks = tokio::task::JoinSet::new();
    {
        let (cfg, index) = (cfg.clone(), index.clone());
        tasks.spawn(async move {
            loop {
                let (stream, _) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(error = %e, "DNS TCP accept");
                        continue;
                    }
                };
                let (cfg, index) = (cfg.clone(), index.clone());
                tokio::spawn(async move {
                    let _ = serve_tcp(stream, &cfg, index.as_ref()).await;
                });
            }
        });
    }
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, peer) = match udp.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                warn!(error = %e, "DNS UDP receive");
                continue;
            }
        };
        let request = buf[..n].to_vec();
        let (udp, cfg, index) = (udp.clone(), cfg.clone(), index.clone());
        tokio::spawn(async move {
            if let Some(mut reply) = answer(&request, &cfg, index.as_ref()).await {
                if reply.len() > 512 {
                    // Too big for plain UDP: truncated, the client retries over TCP.
                    if let Ok(mut m) = Message::from_vec(&reply) {
                        m.take_answers();
                        m.set_truncated(true);
                        if let Ok(r) = m.to_vec() {
                            reply = r;
                        }
                    }
                }
                let _ = udp.send_to(&reply, peer).await;
            }
        });
    }
}

async fn serve_tcp(
    mut stream: tokio::net::TcpStream,
    cfg: &DnsConfig,
    index: &dyn ServiceIndex,
) -> anyhow::Result<()> {
    loop {
        let len = match tokio::time::timeout(Duration::from_secs(10), stream.read_u16()).await {
            Ok(Ok(l)) => l as usize,
            _ => return Ok(()),
        };
        let mut request = vec![0u8; len];
        stream.read_exact(&mut request).await?;
        let Some(reply) = answer(&request, cfg, index).await else {
            return Ok(());
        };
        stream.write_u16(reply.len() as u16).await?;
        stream.write_all(&reply).await?;
    }
}

/// Ask `server` for the A records of `name` over UDP: the response code and addresses. For
/// tests and diagnostics.
pub async fn query_a(
    server: SocketAddr,
    name: &str,
) -> anyhow::Result<(ResponseCode, Vec<IpAddr>)> {
    let mut m = Message::new();
    m.set_id(rand_id())
        .set_message_type(MessageType::Query)
        .set_op_code(OpCode::Query)
        .set_recursion_desired(true)
        .add_query(Query::query(Name::from_ascii(name)?, RecordType::A));
    let sock = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    sock.connect(server).await?;
    sock.send(&m.to_vec()?).await?;
    let mut buf = vec![0u8; 65535];
    let n = tokio::time::timeout(Duration::from_secs(5), sock.recv(&mut buf))
        .await
        .context("DNS server did not answer")??;
    let resp = Message::from_vec(&buf[..n])?;
    let ips = resp
        .answers()
        .iter()
        .filter_map(|r| match r.data() {
            RData::A(a) => Some(IpAddr::V4(a.0)),
            _ => None,
        })
        .collect();
    Ok((resp.response_code(), ips))
}

fn rand_id() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        & 0xffff) as u16
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Default)]
    struct Fake {
        services: Vec<Arc<Service>>,
        slices: Vec<Arc<EndpointSlice>>,
    }

    impl ServiceIndex for Fake {
        fn service(&self, namespace: &str, name: &str) -> Option<Arc<Service>> {
            self.services
                .iter()
                .find(|s| {
                    s.metadata.namespace.as_deref() == Some(namespace)
                        && s.metadata.name.as_deref() == Some(name)
                })
                .cloned()
        }
        fn endpoint_slices(&self, namespace: &str, service: &str) -> Vec<Arc<EndpointSlice>> {
            self.slices
                .iter()
                .filter(|s| slice_of(s, namespace, service))
                .cloned()
                .collect()
        }
    }

    fn fake() -> Fake {
        let svc = |v| Arc::new(serde_json::from_value::<Service>(v).unwrap());
        Fake {
            services: vec![
                svc(json!({"metadata": {"name": "web", "namespace": "default"},
                    "spec": {"clusterIP": "10.96.0.10", "ports": [{"port": 80}]}})),
                svc(json!({"metadata": {"name": "db", "namespace": "prod"},
                    "spec": {"clusterIP": "None", "ports": [{"port": 5432}]}})),
                svc(json!({"metadata": {"name": "ext", "namespace": "default"},
                    "spec": {"type": "ExternalName", "externalName": "example.com"}})),
            ],
            slices: vec![Arc::new(
                serde_json::from_value(json!({
                    "metadata": {"name": "db-1", "namespace": "prod",
                                 "labels": {"kubernetes.io/service-name": "db"}},
                    "addressType": "IPv4",
                    "endpoints": [
                        {"addresses": ["10.244.1.3"], "hostname": "db-0", "conditions": {"ready": true}},
                        {"addresses": ["10.244.1.2"], "hostname": "db-1", "conditions": {"ready": true}},
                        {"addresses": ["10.244.1.9"], "conditions": {"ready": false}},
                    ],
                }))
                .unwrap(),
            )],
        }
    }

    #[test]
    fn names_resolve_as_kubernetes_dns() {
        let f = fake();
        let r = |n: &str| resolve("cluster.local", n, &f);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            r("web.default.svc.cluster.local."),
            NameAnswer::A(vec![ip("10.96.0.10")])
        );
        assert_eq!(
            r("WEB.Default.svc.cluster.local"),
            NameAnswer::A(vec![ip("10.96.0.10")])
        );
        assert_eq!(
            r("db.prod.svc.cluster.local"),
            NameAnswer::A(vec![ip("10.244.1.2"), ip("10.244.1.3")])
        );
        assert_eq!(
            r("db-0.db.prod.svc.cluster.local"),
            NameAnswer::A(vec![ip("10.244.1.3")])
        );
        assert_eq!(
            r("ext.default.svc.cluster.local"),
            NameAnswer::Cname("example.com".into())
        );
        assert_eq!(
            r("10-244-0-7.default.pod.cluster.local"),
            NameAnswer::A(vec![ip("10.244.0.7")])
        );
        assert_eq!(r("default.svc.cluster.local"), NameAnswer::NoData);
        assert_eq!(r("cluster.local"), NameAnswer::NoData);
        assert_eq!(r("nope.default.svc.cluster.local"), NameAnswer::NxDomain);
        assert_eq!(
            r("web.default.svc.cluster.local.default.svc.cluster.local"),
            NameAnswer::NxDomain
        );
        assert_eq!(r("example.com"), NameAnswer::Outside);
        assert_eq!(r("notcluster.local"), NameAnswer::Outside);
    }

    #[tokio::test]
    async fn server_answers_over_udp_and_tcp() {
        let cfg = DnsConfig::new("127.0.0.1:0".parse().unwrap());
        let server = DnsServer::start(cfg, Arc::new(fake())).await;
        let addr = server.local_addr;
        let (code, ips) = query_a(addr, "web.default.svc.cluster.local.")
            .await
            .unwrap();
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(ips, vec![IpAddr::from([10, 96, 0, 10])]);
        let (code, ips) = query_a(addr, "nope.default.svc.cluster.local.")
            .await
            .unwrap();
        assert_eq!(code, ResponseCode::NXDomain);
        assert!(ips.is_empty());
        // Outside the domain, without an upstream: NXDOMAIN, nothing forwarded.
        let (code, _) = query_a(addr, "example.com.").await.unwrap();
        assert_eq!(code, ResponseCode::NXDomain);

        // TCP, length-prefixed.
        let mut m = Message::new();
        m.set_id(7).add_query(Query::query(
            Name::from_ascii("db.prod.svc.cluster.local.").unwrap(),
            RecordType::A,
        ));
        let bytes = m.to_vec().unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_u16(bytes.len() as u16).await.unwrap();
        s.write_all(&bytes).await.unwrap();
        let len = s.read_u16().await.unwrap() as usize;
        let mut buf = vec![0; len];
        s.read_exact(&mut buf).await.unwrap();
        let resp = Message::from_vec(&buf).unwrap();
        assert_eq!(resp.id(), 7);
        assert_eq!(resp.answers().len(), 2);
        server.stop();
    }

    #[tokio::test]
    async fn outside_names_are_forwarded_to_the_upstream() {
        // The upstream is another instance whose domain is `example.com`.
        let mut up_cfg = DnsConfig::new("127.0.0.1:0".parse().unwrap());
        up_cfg.domain = "example.com".into();
        let upstream_index = Fake {
            services: vec![Arc::new(
                serde_json::from_value(json!({"metadata": {"name": "www", "namespace": "x"},
                    "spec": {"clusterIP": "192.0.2.1"}}))
                .unwrap(),
            )],
            ..Default::default()
        };
        let upstream = DnsServer::start(up_cfg, Arc::new(upstream_index)).await;
        let mut cfg = DnsConfig::new("127.0.0.1:0".parse().unwrap());
        cfg.upstream = Some(upstream.local_addr);
        let server = DnsServer::start(cfg, Arc::new(fake())).await;
        let (code, ips) = query_a(server.local_addr, "www.x.svc.example.com.")
            .await
            .unwrap();
        assert_eq!(code, ResponseCode::NoError);
        assert_eq!(ips, vec![IpAddr::from([192, 0, 2, 1])]);
    }
}
