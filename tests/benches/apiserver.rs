//! apiserver benchmark: latency and throughput of create/get/update/list/watch at 1, 8 and 64
//! concurrent clients against a real etcd, the same creates sent straight to etcd as the floor,
//! a 10,000-pod list served from the watch cache, and 1,000 watchers receiving one change.
//!
//! Run with `make bench` (or `cargo bench -p skiff-testkit --bench apiserver`); the results
//! replace the apiserver section of docs/benchmarks.md.

use std::sync::Arc;
use std::time::Instant;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams};
use serde_json::json;
use skiff_testkit::bench::{drive, ms, stats};
use skiff_testkit::TestCluster;
use tokio::sync::Mutex;

const OPS_PER_LEVEL: usize = 2000;
const LEVELS: [usize; 3] = [1, 8, 64];

fn cm(name: String) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}}))
        .expect("valid configmap")
}

#[tokio::main(flavor = "multi_thread")]
async fn main() -> anyhow::Result<()> {
    skiff_testkit::bench::raise_fd_limit();
    let cluster = TestCluster::start().await?;
    let client = cluster.client();
    let mut rows = Vec::new();

    for &clients in &LEVELS {
        let ns = format!("bench-{clients}");
        let nss: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
        nss.create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
        )
        .await?;
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);

        let api = cms.clone();
        let create = drive(clients, OPS_PER_LEVEL, move |i| {
            let api = api.clone();
            async move {
                api.create(&PostParams::default(), &cm(format!("cm-{i}")))
                    .await
                    .expect("create");
            }
        })
        .await;
        let api = cms.clone();
        let get = drive(clients, OPS_PER_LEVEL, move |i| {
            let api = api.clone();
            async move {
                api.get(&format!("cm-{i}")).await.expect("get");
            }
        })
        .await;
        let api = cms.clone();
        let update = drive(clients, OPS_PER_LEVEL, move |i| {
            let api = api.clone();
            async move {
                let patch = Patch::Merge(json!({"data": {"k": format!("v{i}")}}));
                api.patch(&format!("cm-{i}"), &PatchParams::default(), &patch)
                    .await
                    .expect("update");
            }
        })
        .await;
        // Lists of a namespace holding 2,000 objects, consistent reads from the watch cache.
        let api = cms.clone();
        let list = drive(clients, 200, move |_| {
            let api = api.clone();
            async move {
                let l = api.list(&ListParams::default()).await.expect("list");
                assert_eq!(l.items.len(), OPS_PER_LEVEL);
            }
        })
        .await;

        // Watch: `clients` watchers; time from a write's start to its event at each watcher.
        let rv = cms
            .list(&ListParams::default().limit(1))
            .await?
            .metadata
            .resource_version
            .unwrap_or_default();
        let mut watchers = Vec::new();
        for _ in 0..clients {
            watchers.push(
                cms.watch(&WatchParams::default().timeout(120), &rv)
                    .await?
                    .boxed(),
            );
        }
        let writes = 200;
        let sent_at = Arc::new(Mutex::new(Vec::with_capacity(writes)));
        let receivers: Vec<_> = watchers
            .into_iter()
            .map(|mut w| {
                let sent_at = sent_at.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(writes);
                    while lat.len() < writes {
                        match w.next().await {
                            Some(Ok(WatchEvent::Modified(_))) => {
                                let now = Instant::now();
                                let sent: Instant = sent_at.lock().await[lat.len()];
                                lat.push(now - sent);
                            }
                            Some(Ok(_)) => {}
                            other => panic!("watch ended early: {other:?}"),
                        }
                    }
                    lat
                })
            })
            .collect();
        let started = Instant::now();
        for i in 0..writes {
            sent_at.lock().await.push(Instant::now());
            let patch = Patch::Merge(json!({"data": {"w": i.to_string()}}));
            cms.patch("cm-0", &PatchParams::default(), &patch).await?;
        }
        let mut lat = Vec::new();
        for r in receivers {
            lat.extend(r.await?);
        }
        let watch = stats(lat, started.elapsed());

        // The floor: the same creates as single etcd transactions, no apiserver.
        let etcd = cluster.etcd.client().await?;
        let prefix = format!("/bench-direct/{clients}/");
        let direct = drive(clients, OPS_PER_LEVEL, move |i| {
            let mut kv = etcd.kv_client();
            let key = format!("{prefix}{i}");
            async move {
                let value = serde_json::to_vec(&cm(format!("cm-{i}"))).expect("json");
                let txn = Txn::new()
                    .when([Compare::create_revision(key.as_str(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key.as_str(), value, None)]);
                kv.txn(txn).await.expect("etcd txn");
            }
        })
        .await;

        rows.push(format!(
            "| {clients} | {} / {} / {:.0} | {} / {} / {:.0} | {} / {} / {:.0} | {} / {} / {:.0} | {} / {} | {} / {} / {:.0} | {:.2} |",
            ms(create.p50), ms(create.p99), create.per_sec,
            ms(get.p50), ms(get.p99), get.per_sec,
            ms(update.p50), ms(update.p99), update.per_sec,
            ms(list.p50), ms(list.p99), list.per_sec,
            ms(watch.p50), ms(watch.p99),
            ms(direct.p50), ms(direct.p99), direct.per_sec,
            create.per_sec / direct.per_sec,
        ));
    }

    // 10,000 pods listed from the cache.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let api = pods.clone();
    drive(64, 10_000, move |i| {
        let api = api.clone();
        async move {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": {"name": format!("pod-{i:05}"), "labels": {"app": "bench"}},
                "spec": {"containers": [{"name": "c", "image": "busybox:1.36", "resources": {"requests": {"cpu": "10m"}}}]}
            }))
            .expect("valid pod");
            api.create(&PostParams::default(), &pod).await.expect("create pod");
        }
    })
    .await;
    let api = pods.clone();
    let big_list = drive(1, 20, move |_| {
        let api = api.clone();
        async move {
            let l = api.list(&ListParams::default()).await.expect("list pods");
            assert_eq!(l.items.len(), 10_000);
        }
    })
    .await;

    // 1,000 watchers, one change: time until every watcher has it.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("fanout".into()))
        .await?;
    let rv = cms
        .get("fanout")
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let mut streams = Vec::new();
    for _ in 0..1000 {
        streams.push(
            cms.watch(
                &WatchParams::default()
                    .fields("metadata.name=fanout")
                    .timeout(120),
                &rv,
            )
            .await?
            .boxed(),
        );
    }
    let (done_tx, mut done_rx) = tokio::sync::mpsc::channel(1000);
    for mut s in streams {
        let done = done_tx.clone();
        tokio::spawn(async move {
            while let Some(ev) = s.next().await {
                if let Ok(WatchEvent::Modified(_)) = ev {
                    let _ = done.send(Instant::now()).await;
                    break;
                }
            }
        });
    }
    let t0 = Instant::now();
    cms.patch(
        "fanout",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"k": "changed"}})),
    )
    .await?;
    let mut last = t0;
    for _ in 0..1000 {
        last = done_rx.recv().await.expect("every watcher reports");
    }
    let fanout = last - t0;

    let section = format!(
        "<!-- apiserver-bench:start -->\n## apiserver\n\n\
Command: `make bench` (`cargo bench -p skiff-testkit --bench apiserver`), release build, etcd 3.4 \
(Debian) on loopback in a temp dir, apiserver in-process, kube-rs client; 2-core VM.\n\n\
Cells are p50 ms / p99 ms / operations per second. Create, get and update: {OPS_PER_LEVEL} \
configmaps per level; list: 200 consistent lists of a {OPS_PER_LEVEL}-object namespace; watch: \
time from the start of a write to its event at each of N watchers (200 writes); etcd direct: \
the same creates as bare etcd transactions (create-if-absent), the floor; ratio: apiserver \
create throughput / etcd direct throughput.\n\n\
| clients | create | get | update | list | watch p50 / p99 | etcd direct | create ratio |\n\
|---|---|---|---|---|---|---|---|\n{}\n\n\
- List of 10,000 pods from the watch cache: p50 {} ms, p99 {} ms (20 lists).\n\
- 1,000 watchers of one object: all received one change {} ms after the write began.\n\
<!-- apiserver-bench:end -->\n",
        rows.join("\n"),
        ms(big_list.p50),
        ms(big_list.p99),
        ms(fanout),
    );
    println!("{section}");
    skiff_testkit::bench::write_section("apiserver", &section)?;
    cluster.stop().await;
    Ok(())
}
