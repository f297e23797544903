//! The registry on AWS: component bytes in S3 (`<prefix>/<tenant>/blobs/
//! <hex>.wasm`), version records and aliases in a DynamoDB table (the
//! registry index). Several hosts can share one: a version is created
//! with a conditional write (it never changes once written) and aliases
//! are replaced only if their revision is the one read.
//!
//! Items: `pk = "<tenant>#<name>"` holds the versions (`sk = "v#<version>"`)
//! and the aliases (`sk = "aliases"`); `pk = "<tenant>"` lists the
//! component names (`sk = "c#<name>"`). Names cannot contain `#`.
//! Nothing read here is trusted: [`super::Registry`] checks it.

use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_s3::primitives::ByteStream;

use super::{Aliases, RegistryError, Store, VersionRecord};
use crate::brokers::BoxFuture;

/// The default index table.
pub const DEFAULT_TABLE: &str = "agenthost-registry";

/// The largest record or alias item read.
const MAX_ITEM: usize = 1 << 20;

pub struct S3Store {
    s3: aws_sdk_s3::Client,
    dynamo: aws_sdk_dynamodb::Client,
    bucket: String,
    prefix: String,
    table: String,
}

fn storage(what: &str, e: impl std::fmt::Display) -> RegistryError {
    RegistryError::Storage(format!("registry: {what}: {e}"))
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

impl S3Store {
    pub fn new(
        s3: aws_sdk_s3::Client,
        dynamo: aws_sdk_dynamodb::Client,
        bucket: String,
        prefix: String,
        table: String,
    ) -> Self {
        S3Store { s3, dynamo, bucket, prefix: prefix.trim_matches('/').to_owned(), table }
    }

    fn blob_key(&self, tenant: &str, digest: &str) -> Result<String, RegistryError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| {
                RegistryError::Refused(format!("`{}` is not a sha256 digest", crate::text::clip(digest)))
            })?;
        Ok(if self.prefix.is_empty() {
            format!("{tenant}/blobs/{hex}.wasm")
        } else {
            format!("{}/{tenant}/blobs/{hex}.wasm", self.prefix)
        })
    }

    fn artifact_key(&self, tenant: &str, digest: &str, fingerprint: &str) -> Result<String, RegistryError> {
        super::check_fingerprint(fingerprint)?;
        let blob = self.blob_key(tenant, digest)?;
        let hex = blob.rsplit('/').next().unwrap_or_default().trim_end_matches(".wasm").to_owned();
        let base = blob.trim_end_matches(&format!("blobs/{hex}.wasm")).to_owned();
        Ok(format!("{base}artifacts/{fingerprint}/{hex}.cwasm"))
    }

    /// An object's bytes, at most `limit` of them; `None` when absent.
    async fn read_object(&self, key: &str, limit: u64) -> Result<Option<Vec<u8>>, RegistryError> {
        let object = match self.s3.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(object) => object,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) => {
                return Err(storage(
                    &format!("cannot read s3://{}/{key}", self.bucket),
                    crate::aws::describe(&e),
                ));
            }
        };
        let too_large = || {
            RegistryError::Refused(format!(
                "registry: s3://{}/{key} is larger than {limit} bytes",
                self.bucket
            ))
        };
        if object.content_length().is_some_and(|n| n < 0 || n as u64 > limit) {
            return Err(too_large());
        }
        let mut body = object.body;
        let mut bytes = Vec::new();
        while let Some(chunk) = body.try_next().await.map_err(|e| storage("cannot read an object", e))? {
            if (bytes.len() + chunk.len()) as u64 > limit {
                return Err(too_large());
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Some(bytes))
    }

    fn parse<T: serde::de::DeserializeOwned>(
        item: &std::collections::HashMap<String, AttributeValue>,
        what: &str,
    ) -> Result<T, RegistryError> {
        let text = item
            .get("body")
            .and_then(|v| v.as_s().ok())
            .ok_or_else(|| RegistryError::Refused(format!("registry: the {what} item has no body")))?;
        if text.len() > MAX_ITEM {
            return Err(RegistryError::Refused(format!(
                "registry: the {what} item is larger than {MAX_ITEM} bytes"
            )));
        }
        serde_json::from_str(text)
            .map_err(|e| RegistryError::Refused(format!("registry: the {what} item is not valid: {e}")))
    }

    /// Creates the bucket and the table if they are missing; says which
    /// were created.
    ///
    /// # Errors
    ///
    /// When either cannot be created.
    pub async fn create(&self) -> Result<(bool, bool), RegistryError> {
        let bucket = if self.s3.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            false
        } else {
            self.s3.create_bucket().bucket(&self.bucket).send().await.map_err(|e| {
                storage(&format!("cannot create bucket {}", self.bucket), crate::aws::describe(&e))
            })?;
            true
        };
        let table = crate::brokers::memory::create_table(&self.dynamo, &self.table)
            .await
            .map_err(|e| storage(&format!("cannot create table {}", self.table), e))?;
        Ok((bucket, table))
    }
}

impl Store for S3Store {
    fn put_blob<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        bytes: &'a [u8],
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let key = self.blob_key(tenant, digest)?;
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(ByteStream::from(bytes.to_vec()))
                .send()
                .await
                .map_err(|e| {
                    storage(&format!("cannot store s3://{}/{key}", self.bucket), crate::aws::describe(&e))
                })?;
            Ok(())
        })
    }

    fn get_blob<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<Vec<u8>, RegistryError>> {
        Box::pin(async move {
            let key = self.blob_key(tenant, digest)?;
            self.read_object(&key, limit).await?.ok_or_else(|| {
                RegistryError::NotFound(format!("registry: the bytes of {digest} are missing"))
            })
        })
    }

    fn put_artifact<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        fingerprint: &'a str,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let key = self.artifact_key(tenant, digest, fingerprint)?;
            self.s3
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .body(ByteStream::from(sealed.to_vec()))
                .send()
                .await
                .map_err(|e| {
                    storage(&format!("cannot store s3://{}/{key}", self.bucket), crate::aws::describe(&e))
                })?;
            Ok(())
        })
    }

    fn get_artifact<'a>(
        &'a self,
        tenant: &'a str,
        digest: &'a str,
        fingerprint: &'a str,
        limit: u64,
    ) -> BoxFuture<'a, Result<Option<Vec<u8>>, RegistryError>> {
        Box::pin(
            async move { self.read_object(&self.artifact_key(tenant, digest, fingerprint)?, limit).await },
        )
    }

    fn create_version<'a>(
        &'a self,
        record: &'a VersionRecord,
    ) -> BoxFuture<'a, Result<Option<VersionRecord>, RegistryError>> {
        Box::pin(async move {
            let body = serde_json::to_string(record).map_err(|e| storage("cannot encode a record", e))?;
            let put = self
                .dynamo
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&format!("{}#{}", record.tenant, record.name)))
                .item("sk", s(&format!("v#{}", record.version)))
                .item("body", s(&body))
                .item("deployed_at", AttributeValue::N(record.deployed_at.to_string()))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match put {
                Ok(_) => {}
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                    return self.get_version(&record.tenant, &record.name, &record.version).await.map(Some);
                }
                Err(e) => return Err(storage("cannot write a version record", crate::aws::describe(&e))),
            }
            self.dynamo
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&record.tenant))
                .item("sk", s(&format!("c#{}", record.name)))
                .send()
                .await
                .map_err(|e| storage("cannot list a component", crate::aws::describe(&e)))?;
            Ok(None)
        })
    }

    fn get_version<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
        version: &'a str,
    ) -> BoxFuture<'a, Result<VersionRecord, RegistryError>> {
        Box::pin(async move {
            let item = self
                .dynamo
                .get_item()
                .table_name(&self.table)
                .key("pk", s(&format!("{tenant}#{name}")))
                .key("sk", s(&format!("v#{version}")))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| storage("cannot read a version record", crate::aws::describe(&e)))?;
            let item = item.item.ok_or_else(|| {
                RegistryError::NotFound(format!("tenant `{tenant}` has no version {version} of `{name}`"))
            })?;
            Self::parse(&item, "version")
        })
    }

    fn list_versions<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Vec<VersionRecord>, RegistryError>> {
        Box::pin(async move {
            let mut records = Vec::new();
            let mut start = None;
            loop {
                let page = self
                    .dynamo
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :v)")
                    .expression_attribute_values(":pk", s(&format!("{tenant}#{name}")))
                    .expression_attribute_values(":v", s("v#"))
                    .set_exclusive_start_key(start)
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| storage("cannot list versions", crate::aws::describe(&e)))?;
                for item in page.items() {
                    records.push(Self::parse::<VersionRecord>(item, "version")?);
                }
                start = page.last_evaluated_key;
                if start.is_none() || records.len() >= 10_000 {
                    break;
                }
            }
            records.sort_by(|a, b| (a.deployed_at, &a.version).cmp(&(b.deployed_at, &b.version)));
            Ok(records)
        })
    }

    fn list_components<'a>(&'a self, tenant: &'a str) -> BoxFuture<'a, Result<Vec<String>, RegistryError>> {
        Box::pin(async move {
            let mut names = Vec::new();
            let mut start = None;
            loop {
                let page = self
                    .dynamo
                    .query()
                    .table_name(&self.table)
                    .key_condition_expression("pk = :pk AND begins_with(sk, :c)")
                    .expression_attribute_values(":pk", s(tenant))
                    .expression_attribute_values(":c", s("c#"))
                    .set_exclusive_start_key(start)
                    .send()
                    .await
                    .map_err(|e| storage("cannot list components", crate::aws::describe(&e)))?;
                names.extend(
                    page.items()
                        .iter()
                        .filter_map(|i| i.get("sk").and_then(|v| v.as_s().ok()))
                        .filter_map(|sk| sk.strip_prefix("c#"))
                        .filter(|n| super::check_name("component name", n).is_ok())
                        .map(str::to_owned),
                );
                start = page.last_evaluated_key;
                if start.is_none() || names.len() >= 10_000 {
                    break;
                }
            }
            names.sort();
            Ok(names)
        })
    }

    fn get_aliases<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Aliases, RegistryError>> {
        Box::pin(async move {
            let item = self
                .dynamo
                .get_item()
                .table_name(&self.table)
                .key("pk", s(&format!("{tenant}#{name}")))
                .key("sk", s("aliases"))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| storage("cannot read aliases", crate::aws::describe(&e)))?;
            match item.item {
                Some(item) => Self::parse(&item, "aliases"),
                None => Ok(Aliases::default()),
            }
        })
    }

    fn put_aliases<'a>(
        &'a self,
        tenant: &'a str,
        name: &'a str,
        aliases: &'a Aliases,
        expected: u64,
    ) -> BoxFuture<'a, Result<(), RegistryError>> {
        Box::pin(async move {
            let body = serde_json::to_string(aliases).map_err(|e| storage("cannot encode aliases", e))?;
            let mut put = self
                .dynamo
                .put_item()
                .table_name(&self.table)
                .item("pk", s(&format!("{tenant}#{name}")))
                .item("sk", s("aliases"))
                .item("body", s(&body))
                .item("revision", AttributeValue::N(aliases.revision.to_string()));
            put = if expected == 0 {
                put.condition_expression("attribute_not_exists(pk)")
            } else {
                put.condition_expression("revision = :expected")
                    .expression_attribute_values(":expected", AttributeValue::N(expected.to_string()))
            };
            match put.send().await {
                Ok(_) => Ok(()),
                Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                    Err(RegistryError::Conflict(format!("the aliases of `{name}` changed meanwhile")))
                }
                Err(e) => Err(storage("cannot write aliases", crate::aws::describe(&e))),
            }
        })
    }
}
