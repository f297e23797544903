//! Memory on DynamoDB: one table for every tenant and namespace.
//!
//! Single-table design: partition key `pk = t#<tenant>#n#<namespace>`, sort
//! key `sk = k#<key>`, so a namespace is one partition, `list` is one Query
//! with `begins_with`, and no request can name a key outside the caller's
//! partition. Compare-and-set is a conditional write on `version`; expiry is
//! the `expires_at` attribute, which the table's TTL setting (made by
//! `agenthost aws bootstrap`) deletes; until it does, reads treat a record
//! past it as gone.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, ReturnValue,
    ScalarAttributeType, TimeToLiveSpecification,
};

use super::{
    BoxFuture, MAX_PAGE, MemoryError, MemoryStore, Page, Put, Record, RecordMeta, Scope, check_key,
    check_put, expiry, live, now_secs,
};
use crate::aws::{describe, is_unavailable};

type Item = HashMap<String, AttributeValue>;

pub struct DynamoMemory {
    client: Client,
    table: String,
}

impl std::fmt::Debug for DynamoMemory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoMemory").field("table", &self.table).finish_non_exhaustive()
    }
}

fn sdk_error<E>(
    table: &str,
    what: &str,
    e: &aws_sdk_dynamodb::error::SdkError<E, aws_sdk_dynamodb::config::http::HttpResponse>,
) -> MemoryError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let text = format!("DynamoDB {what} on table `{table}`: {}", describe(e));
    if is_unavailable(e) { MemoryError::Unavailable(text) } else { MemoryError::Internal(text) }
}

fn pk(scope: Scope<'_>) -> Result<String, MemoryError> {
    if scope.tenant.contains('#') {
        return Err(MemoryError::Invalid(format!("tenant id `{}` may not contain `#`", scope.tenant)));
    }
    Ok(format!("t#{}#n#{}", scope.tenant, scope.namespace))
}

fn sk(key: &str) -> String {
    format!("k#{key}")
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn num(item: &Item, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|t| t.parse().ok())
}

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn record_of(item: &Item) -> Result<Record, MemoryError> {
    let corrupt = |field: &str| MemoryError::Internal(format!("a stored item lacks `{field}`"));
    let classification = text(item, "classification")
        .and_then(super::Classification::parse)
        .ok_or_else(|| corrupt("classification"))?;
    Ok(Record {
        key: text(item, "key").ok_or_else(|| corrupt("key"))?.to_owned(),
        value: item.get("value").and_then(|v| v.as_b().ok()).map(|b| b.as_ref().to_vec()).unwrap_or_default(),
        version: num(item, "version").ok_or_else(|| corrupt("version"))?,
        expires_at: num(item, "expires_at"),
        meta: RecordMeta {
            classification,
            retention_days: num(item, "retention_days").and_then(|d| u32::try_from(d).ok()),
            writer: text(item, "writer").unwrap_or_default().to_owned(),
            run_id: text(item, "run_id").unwrap_or_default().to_owned(),
            written_at: num(item, "written_at").unwrap_or(0),
        },
    })
}

impl DynamoMemory {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoMemory { client, table: table.into() }
    }

    async fn get_item(&self, scope: Scope<'_>, key: &str) -> Result<Option<Item>, MemoryError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk(scope)?))
            .key("sk", s(sk(key)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| sdk_error(&self.table, "GetItem", &e))?;
        Ok(out.item.filter(|item| live(num(item, "expires_at"), now_secs())))
    }

    async fn get_now(&self, scope: Scope<'_>, key: &str) -> Result<Option<Record>, MemoryError> {
        check_key(key)?;
        self.get_item(scope, key).await?.as_ref().map(record_of).transpose()
    }

    async fn conflict(&self, scope: Scope<'_>, key: &str, expected: u64) -> MemoryError {
        let stored = match self.get_item(scope, key).await {
            Ok(item) => item.as_ref().and_then(|i| num(i, "version")).unwrap_or(0),
            Err(e) => return e,
        };
        MemoryError::Conflict { key: key.to_owned(), expected, stored }
    }

    async fn put_now(&self, scope: Scope<'_>, key: &str, put: Put) -> Result<u64, MemoryError> {
        check_put(key, &put)?;
        let now = now_secs();
        let mut values: Item = HashMap::from([
            (":key".to_owned(), s(key)),
            (":val".to_owned(), AttributeValue::B(put.value.into())),
            (":tenant".to_owned(), s(scope.tenant)),
            (":ns".to_owned(), s(scope.namespace)),
            (":class".to_owned(), s(put.meta.classification.as_str())),
            (":writer".to_owned(), s(put.meta.writer)),
            (":run".to_owned(), s(put.meta.run_id)),
            (":at".to_owned(), n(put.meta.written_at)),
        ]);
        let mut set = vec![
            "#key = :key",
            "#val = :val",
            "tenant = :tenant",
            "#ns = :ns",
            "classification = :class",
            "writer = :writer",
            "run_id = :run",
            "written_at = :at",
        ];
        let mut remove = Vec::new();
        match put.meta.retention_days {
            Some(days) => {
                values.insert(":ret".to_owned(), n(days));
                set.push("retention_days = :ret");
            }
            None => remove.push("retention_days"),
        }
        match expiry(put.ttl_seconds, now) {
            Some(at) => {
                values.insert(":exp".to_owned(), n(at));
                set.push("expires_at = :exp");
            }
            None => remove.push("expires_at"),
        }
        let live_cond = "(attribute_not_exists(expires_at) OR expires_at > :now)";
        let condition = match put.expected_version {
            // Absent, or present only as an expired record: starts again at 1.
            Some(0) => {
                values.insert(":now".to_owned(), n(now));
                values.insert(":one".to_owned(), n(1));
                set.push("#v = :one");
                Some("attribute_not_exists(pk) OR expires_at <= :now".to_owned())
            }
            Some(expected) => {
                // The guest names `expected`: at u64::MAX there is no next.
                let next = expected.checked_add(1).ok_or_else(|| {
                    MemoryError::Invalid(format!("expected version {expected} has no successor"))
                })?;
                values.insert(":now".to_owned(), n(now));
                values.insert(":expected".to_owned(), n(expected));
                values.insert(":next".to_owned(), n(next));
                set.push("#v = :next");
                Some(format!("#v = :expected AND {live_cond}"))
            }
            None => {
                values.insert(":zero".to_owned(), n(0));
                values.insert(":one".to_owned(), n(1));
                set.push("#v = if_not_exists(#v, :zero) + :one");
                None
            }
        };
        let mut expression = format!("SET {}", set.join(", "));
        if !remove.is_empty() {
            expression.push_str(&format!(" REMOVE {}", remove.join(", ")));
        }
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .key("pk", s(pk(scope)?))
            .key("sk", s(sk(key)))
            .update_expression(expression)
            .set_condition_expression(condition)
            .expression_attribute_names("#v", "version")
            .expression_attribute_names("#val", "value")
            .expression_attribute_names("#key", "key")
            .expression_attribute_names("#ns", "namespace")
            .set_expression_attribute_values(Some(values))
            .return_values(ReturnValue::UpdatedNew)
            .send()
            .await;
        match result {
            // A compare-and-set knows the version it wrote.
            Ok(_) if put.expected_version.is_some() => {
                Ok(put.expected_version.unwrap_or(0).saturating_add(1))
            }
            Ok(out) => {
                out.attributes.as_ref().and_then(|a| num(a, "version")).ok_or_else(|| {
                    MemoryError::Internal("DynamoDB did not return the new version".to_owned())
                })
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(self.conflict(scope, key, put.expected_version.unwrap_or(0)).await)
            }
            Err(e) => Err(sdk_error(&self.table, "UpdateItem", &e)),
        }
    }

    async fn delete_now(
        &self,
        scope: Scope<'_>,
        key: &str,
        expected: Option<u64>,
    ) -> Result<bool, MemoryError> {
        check_key(key)?;
        let now = now_secs();
        let mut request = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(pk(scope)?))
            .key("sk", s(sk(key)))
            .return_values(ReturnValue::AllOld);
        match expected {
            Some(0) => {
                request = request
                    .condition_expression("attribute_not_exists(pk) OR expires_at <= :now")
                    .expression_attribute_values(":now", n(now));
            }
            Some(version) => {
                request = request
                    .condition_expression(
                        "#v = :expected AND (attribute_not_exists(expires_at) OR expires_at > :now)",
                    )
                    .expression_attribute_names("#v", "version")
                    .expression_attribute_values(":expected", n(version))
                    .expression_attribute_values(":now", n(now));
            }
            None => {}
        }
        match request.send().await {
            Ok(out) => Ok(out.attributes.is_some_and(|old| live(num(&old, "expires_at"), now))),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_conditional_check_failed_exception()) => {
                Err(self.conflict(scope, key, expected.unwrap_or(0)).await)
            }
            Err(e) => Err(sdk_error(&self.table, "DeleteItem", &e)),
        }
    }

    async fn list_now(
        &self,
        scope: Scope<'_>,
        prefix: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> Result<Page, MemoryError> {
        let limit = limit.clamp(1, MAX_PAGE) as usize;
        let partition = pk(scope)?;
        let now = now_secs();
        let mut keys = Vec::new();
        let mut start: Option<Item> = cursor.map(|after| {
            HashMap::from([("pk".to_owned(), s(partition.clone())), ("sk".to_owned(), s(sk(after)))])
        });
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
                .expression_attribute_values(":pk", s(partition.clone()))
                .expression_attribute_values(":prefix", s(sk(prefix)))
                .set_exclusive_start_key(start.take())
                .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
                .consistent_read(true)
                .send()
                .await
                .map_err(|e| sdk_error(&self.table, "Query", &e))?;
            for item in out.items() {
                if live(num(item, "expires_at"), now)
                    && let Some(key) = text(item, "key")
                {
                    keys.push(key.to_owned());
                }
            }
            match out.last_evaluated_key {
                Some(last) if keys.len() <= limit => start = Some(last),
                _ => break,
            }
        }
        Ok(Page::from_overfetch(keys, limit))
    }
}

impl MemoryStore for DynamoMemory {
    fn probe(&self) -> BoxFuture<'_, Result<(), MemoryError>> {
        Box::pin(async move {
            self.client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| sdk_error(&self.table, "DescribeTable", &e))
        })
    }

    fn name(&self) -> &'static str {
        "dynamodb"
    }

    fn get<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<Record>, MemoryError>> {
        Box::pin(self.get_now(scope, key))
    }

    fn put<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
        put: Put,
    ) -> BoxFuture<'a, Result<u64, MemoryError>> {
        Box::pin(self.put_now(scope, key, put))
    }

    fn delete<'a>(
        &'a self,
        scope: Scope<'a>,
        key: &'a str,
        expected_version: Option<u64>,
    ) -> BoxFuture<'a, Result<bool, MemoryError>> {
        Box::pin(self.delete_now(scope, key, expected_version))
    }

    fn list<'a>(
        &'a self,
        scope: Scope<'a>,
        prefix: &'a str,
        cursor: Option<&'a str>,
        limit: u32,
    ) -> BoxFuture<'a, Result<Page, MemoryError>> {
        Box::pin(self.list_now(scope, prefix, cursor, limit))
    }
}

/// Creates the memory table (pay per request, `expires_at` as its TTL
/// attribute). Returns `false` if it already existed.
///
/// # Errors
/// When DynamoDB refuses or cannot be reached.
pub async fn create_table(client: &Client, table: &str) -> Result<bool, MemoryError> {
    let created = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| MemoryError::Internal(e.to_string()))?,
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| MemoryError::Internal(e.to_string()))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .map_err(|e| MemoryError::Internal(e.to_string()))?,
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .map_err(|e| MemoryError::Internal(e.to_string()))?,
        )
        .send()
        .await;
    let created = match created {
        Ok(_) => true,
        Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_in_use_exception()) => false,
        Err(e) => return Err(sdk_error(table, "CreateTable", &e)),
    };
    let ttl = TimeToLiveSpecification::builder()
        .attribute_name("expires_at")
        .enabled(true)
        .build()
        .map_err(|e| MemoryError::Internal(e.to_string()))?;
    match client.update_time_to_live().table_name(table).time_to_live_specification(ttl).send().await {
        Ok(_) => {}
        // Asking again for the TTL that is already on is not a failure.
        Err(e) if describe(&e).contains("already enabled") => {}
        Err(e) => return Err(sdk_error(table, "UpdateTimeToLive", &e)),
    }
    Ok(created)
}
