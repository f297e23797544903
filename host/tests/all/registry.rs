//! The registry on S3 and DynamoDB (moto): the same checks as the local
//! directory, a shared index with conditional writes, and a tampered
//! bucket refused.

use std::sync::Arc;

use agenthost::Governance;
use agenthost::keys::KeyPair;
use agenthost::registry::{Alias, Deploy, Publication, Registry, RegistryError, S3Store, Store};
use agenthost_artifacts as artifacts;
use sha2::{Digest as _, Sha256};

fn governance(dir: &std::path::Path, publisher: &KeyPair) -> Arc<Governance> {
    let config = dir.join("config");
    std::fs::create_dir_all(config.join("tenants")).unwrap();
    std::fs::write(config.join("publisher.pub"), publisher.public().pem().unwrap()).unwrap();
    std::fs::write(config.join("host.toml"), "default_tenant = \"acme\"\n").unwrap();
    std::fs::write(config.join("tenants/acme.toml"), "id = \"acme\"\n[publishers]\nci = \"publisher.pub\"\n")
        .unwrap();
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    Arc::new(Governance::load(&config, None, Some(&data)).unwrap())
}

fn deploy<'a>(wasm: &'a [u8], manifest: &'a str, version: &str, key: &KeyPair) -> Deploy<'a> {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(wasm)));
    Deploy {
        tenant: "acme",
        wasm,
        manifest,
        signature: Publication {
            tenant: "acme",
            name: "versioned",
            version,
            digest: &digest,
            manifest_digest: &agenthost::registry::manifest_digest(manifest),
        }
        .sign(key),
        deployer: "dana",
    }
}

fn manifest(wasm: &[u8], version: &str) -> String {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(wasm)));
    format!(
        "name = \"versioned\"\nversion = \"{version}\"\ndigest = \"{digest}\"\nworld = \"tool\"\nrisk_tier = \"read\"\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_on_s3_and_dynamodb_are_checked_shared_and_refused_when_tampered() {
    let Some(config) = crate::common::aws::moto().await else { return };
    let dir = tempfile::tempdir().unwrap();
    let publisher = KeyPair::generate();
    let governance = governance(dir.path(), &publisher);
    let suffix = hex::encode(rand::random::<[u8; 4]>());
    let (bucket, table) = (format!("registry-{suffix}"), format!("registry-{suffix}"));
    let s3 = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build(),
    );
    let dynamo = aws_sdk_dynamodb::Client::new(&config);
    let store = S3Store::new(s3.clone(), dynamo.clone(), bucket.clone(), "components".into(), table.clone());
    assert_eq!(store.create().await.unwrap(), (true, true));
    assert_eq!(store.create().await.unwrap(), (false, false), "a second bootstrap creates nothing");
    let store: Arc<dyn Store> = Arc::new(store);
    let registry = Registry::new(store.clone(), governance.clone(), 16 << 20);
    // Precompiled artifacts: stored and read back as they are (the host checks their seal).
    let some_digest = format!("sha256:{}", "ab".repeat(32));
    store.put_artifact("acme", &some_digest, "engine-1", b"sealed").await.unwrap();
    assert_eq!(
        store.get_artifact("acme", &some_digest, "engine-1", 1024).await.unwrap().as_deref(),
        Some(&b"sealed"[..])
    );
    assert!(store.get_artifact("acme", &some_digest, "engine-2", 1024).await.unwrap().is_none());
    assert!(
        store.get_artifact("acme", &some_digest, "../x", 1024).await.is_err(),
        "a fingerprint is not a path"
    );

    let v1 = std::fs::read(artifacts::VERSIONED_1_0_0).unwrap();
    let v2 = std::fs::read(artifacts::VERSIONED_2_0_0).unwrap();
    let (m1, m2) = (manifest(&v1, "1.0.0"), manifest(&v2, "2.0.0"));
    let published = registry.publish(deploy(&v1, &m1, "1.0.0", &publisher)).await.unwrap();
    assert_eq!(published.record.publisher, "ci");
    registry.publish(deploy(&v2, &m2, "2.0.0", &publisher)).await.unwrap();
    // Idempotent for the same bytes; a conflict for other bytes.
    registry.publish(deploy(&v1, &m1, "1.0.0", &publisher)).await.unwrap();
    let other = manifest(&v2, "1.0.0");
    let err = registry.publish(deploy(&v2, &other, "1.0.0", &publisher)).await.err().unwrap();
    assert!(matches!(err, RegistryError::Conflict(_)), "{err}");
    // An unknown key is refused before anything is stored.
    let err = registry
        .publish(deploy(&v2, &manifest(&v2, "3.0.0"), "3.0.0", &KeyPair::generate()))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, RegistryError::Refused(_)), "{err}");

    assert_eq!(store.list_components("acme").await.unwrap(), ["versioned"]);
    let versions: Vec<String> =
        store.list_versions("acme", "versioned").await.unwrap().into_iter().map(|r| r.version).collect();
    assert_eq!(versions, ["1.0.0", "2.0.0"]);

    // Aliases: a second host sharing the index sees them; a stale writer loses.
    registry.update_aliases("acme", "versioned", |a| a.set(Alias::Stable, "1.0.0", None)).await.unwrap();
    let second = Registry::new(
        Arc::new(S3Store::new(
            s3.clone(),
            dynamo.clone(),
            bucket.clone(),
            "components".into(),
            table.clone(),
        )),
        governance.clone(),
        16 << 20,
    );
    let seen = second.aliases("acme", "versioned").await.unwrap();
    assert_eq!(seen.stable.as_deref(), Some("1.0.0"));
    let mut stale = seen.clone();
    stale.revision += 1;
    registry.update_aliases("acme", "versioned", |a| a.set(Alias::Canary, "2.0.0", Some(10))).await.unwrap();
    let err = store.put_aliases("acme", "versioned", &stale, seen.revision).await.err().unwrap();
    assert!(matches!(err, RegistryError::Conflict(_)), "{err}");
    let err = registry
        .update_aliases("acme", "versioned", |a| a.set(Alias::Stable, "9.9.9", None))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, RegistryError::NotFound(_)), "an alias cannot name a missing version: {err}");

    // What comes back is checked: the bytes in the bucket swapped for others.
    let fetched = second.fetch("acme", "versioned", "1.0.0").await.unwrap();
    assert_eq!(fetched.bytes, v1);
    let key = format!("components/acme/blobs/{}.wasm", hex::encode(Sha256::digest(&v1)));
    s3.put_object().bucket(&bucket).key(&key).body(v2.clone().into()).send().await.unwrap();
    let err = second.fetch("acme", "versioned", "1.0.0").await.err().unwrap();
    assert!(err.to_string().contains("the store was altered"), "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_takes_a_precompiled_artifact_from_the_registry_only_if_its_seal_verifies() {
    use agenthost::registry::LocalStore;
    use agenthost::registry::warm::WarmSet;
    use agenthost::{Host, HostConfig, LoadSource};

    let dir = tempfile::tempdir().unwrap();
    let publisher = KeyPair::generate();
    let governance = governance(dir.path(), &publisher);
    let store: Arc<dyn Store> = Arc::new(LocalStore::open(&dir.path().join("registry")).unwrap());
    let registry = Registry::new(store.clone(), governance.clone(), 16 << 20);
    let v1 = std::fs::read(artifacts::VERSIONED_1_0_0).unwrap();
    let m1 = manifest(&v1, "1.0.0");
    let digest = registry.publish(deploy(&v1, &m1, "1.0.0", &publisher)).await.unwrap().record.digest;
    let node = |cache: &str, key: [u8; 32]| {
        Arc::new(
            Host::new(HostConfig {
                governance: Some(governance.clone()),
                cache_dir: Some(dir.path().join(cache)),
                cache_key: Some(key),
                share_artifacts: true,
                ..HostConfig::default()
            })
            .unwrap(),
        )
    };
    let load = |host: Arc<Host>| {
        let registry = registry.clone();
        async move {
            let (tool, _) = WarmSet::new(host, registry).get("acme", "versioned", "1.0.0").await.unwrap();
            tool.source().clone()
        }
    };
    let key = [7u8; 32];

    // The first node compiles and shares its artifact through the registry.
    let first = node("cache-a", key);
    assert_eq!(load(first.clone()).await, LoadSource::Compiled);
    let fingerprint = first.artifact_fingerprint().unwrap();
    let mut shared = None;
    for _ in 0..100 {
        shared = store.get_artifact("acme", &digest, &fingerprint, 1 << 30).await.unwrap();
        if shared.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let shared = shared.expect("the compiled artifact reached the registry");

    // A node with the same cache key loads it without compiling.
    assert_eq!(load(node("cache-b", key)).await, LoadSource::DiskCache);
    // A node with another key looks elsewhere in the registry, so fleets
    // with different keys do not overwrite each other's artifacts…
    let other = node("cache-c", [9u8; 32]);
    let elsewhere = other.artifact_fingerprint().unwrap();
    assert_ne!(elsewhere, fingerprint);
    // …and refuses this key's artifact even where it looks, and compiles.
    store.put_artifact("acme", &digest, &elsewhere, &shared).await.unwrap();
    assert_eq!(load(other).await, LoadSource::Compiled);
    // A node with no configured key (one made for its process), or not
    // told to share, shares nothing.
    for (key, share) in [(None, true), (Some(key), false)] {
        let alone = Host::new(HostConfig {
            governance: Some(governance.clone()),
            cache_dir: Some(dir.path().join("cache-e")),
            cache_key: key,
            share_artifacts: share,
            ..HostConfig::default()
        })
        .unwrap();
        assert_eq!(alone.artifact_fingerprint(), None);
    }
    // An artifact altered in the registry is refused, and the node compiles.
    let mut tampered = shared.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0xff;
    store.put_artifact("acme", &digest, &fingerprint, &tampered).await.unwrap();
    assert_eq!(load(node("cache-d", key)).await, LoadSource::Compiled);
}
