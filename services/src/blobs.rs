//! Object storage (S3, path-style, any compatible server): raw mailings under
//! `raw/<mailing>/`, filed pieces under `pieces/<numero unique>/<piece>.pdf`, reports under
//! `reports/<mailing>.json`. Keys are deterministic, so storing again after a crash overwrites
//! the same object with the same bytes.

use std::path::Path;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, timeout::TimeoutConfig};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};
use thiserror::Error;

use crate::metrics::CallTimer;
use crate::settings::StorageSection;

#[derive(Debug, Error)]
#[error("object storage, {op} {key}: {message}")]
pub struct BlobError {
    pub op: &'static str,
    pub key: String,
    pub message: String,
    /// The object is not there: trying again cannot help.
    pub missing: bool,
}

fn err<E: std::error::Error>(op: &'static str, key: &str, e: E) -> BlobError {
    // The SDK's Display is terse ("service error"); the source chain says what happened.
    let mut message = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    BlobError { op, key: key.to_string(), message, missing: false }
}

#[derive(Clone)]
pub struct Blobs {
    client: Client,
    bucket: String,
    calls: Option<CallTimer>,
}

impl std::fmt::Debug for Blobs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Blobs").field("bucket", &self.bucket).finish_non_exhaustive()
    }
}

impl Blobs {
    pub fn new(cfg: &StorageSection) -> Self {
        let http = aws_smithy_http_client::Builder::new().tls_provider(tls::Provider::Rustls(CryptoMode::Ring)).build_https();
        let conf = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .http_client(http)
            .endpoint_url(&cfg.endpoint)
            .region(Region::new(cfg.region.clone()))
            .credentials_provider(Credentials::new(&cfg.access_key, cfg.secret_key.expose(), None, None, "scanbureau-config"))
            .force_path_style(true)
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).operation_attempt_timeout(Duration::from_secs(120)).build())
            .build();
        Self { client: Client::from_conf(conf), bucket: cfg.bucket.clone(), calls: None }
    }

    /// Times puts and gets into the process's metrics.
    pub fn timed_by(self, calls: CallTimer) -> Self {
        Self { calls: Some(calls), ..self }
    }

    async fn timed<T>(&self, operation: &'static str, call: impl std::future::Future<Output = Result<T, BlobError>>) -> Result<T, BlobError> {
        let started = std::time::Instant::now();
        let result = call.await;
        if let Some(calls) = &self.calls {
            calls.observe("s3", operation, result.is_ok(), started.elapsed());
        }
        result
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Creates the bucket if it does not exist yet.
    pub async fn ensure_bucket(&self) -> Result<(), BlobError> {
        if self.client.head_bucket().bucket(&self.bucket).send().await.is_ok() {
            return Ok(());
        }
        match self.client.create_bucket().bucket(&self.bucket).send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let text = format!("{e:?}");
                if text.contains("BucketAlreadyOwnedByYou") || text.contains("BucketAlreadyExists") {
                    Ok(())
                } else {
                    Err(err("create bucket", &self.bucket, e))
                }
            }
        }
    }

    pub async fn put_bytes(&self, key: &str, bytes: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        let put = self.client.put_object().bucket(&self.bucket).key(key).content_type(content_type).body(ByteStream::from(bytes)).send();
        self.timed("put", async { put.await.map(|_| ()).map_err(|e| err("put", key, e)) }).await
    }

    /// Streams a file from disk (a portal upload, a scanner batch) without loading it whole.
    pub async fn put_file(&self, key: &str, path: &Path, content_type: &str) -> Result<(), BlobError> {
        let body = ByteStream::from_path(path).await.map_err(|e| err("read for put", key, e))?;
        let put = self.client.put_object().bucket(&self.bucket).key(key).content_type(content_type).body(body).send();
        self.timed("put", async { put.await.map(|_| ()).map_err(|e| err("put", key, e)) }).await
    }

    /// Downloads an object into a file, streaming.
    pub async fn get_to_file(&self, key: &str, path: &Path) -> Result<u64, BlobError> {
        self.timed("get", self.download(key, path)).await
    }

    async fn download(&self, key: &str, path: &Path) -> Result<u64, BlobError> {
        use tokio::io::AsyncWriteExt;
        let out = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| {
            let missing = e.as_service_error().is_some_and(|s| s.is_no_such_key());
            BlobError { missing, ..err("get", key, e) }
        })?;
        let mut body = out.body;
        let mut file = tokio::fs::File::create(path).await.map_err(|e| err("write local copy of", key, e))?;
        let mut n = 0u64;
        while let Some(chunk) = body.try_next().await.map_err(|e| err("read", key, e))? {
            n += chunk.len() as u64;
            file.write_all(&chunk).await.map_err(|e| err("write local copy of", key, e))?;
        }
        file.flush().await.map_err(|e| err("write local copy of", key, e))?;
        Ok(n)
    }

    pub async fn get_bytes(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        self.timed("get", async {
            let out = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| err("get", key, e))?;
            let data = out.body.collect().await.map_err(|e| err("read", key, e))?;
            Ok(data.into_bytes().to_vec())
        })
        .await
    }

    pub async fn exists(&self, key: &str) -> Result<bool, BlobError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(err("head", key, e)),
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.client.delete_object().bucket(&self.bucket).key(key).send().await.map_err(|e| err("delete", key, e))?;
        Ok(())
    }

    /// Keys under a prefix (tests and operators' checks).
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>, BlobError> {
        let mut keys = Vec::new();
        let mut token = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| err("list", prefix, e))?;
            keys.extend(out.contents().iter().filter_map(|o| o.key().map(str::to_string)));
            match out.next_continuation_token() {
                Some(t) => token = Some(t.to_string()),
                None => break,
            }
        }
        Ok(keys)
    }

    /// Deletes every object and then the bucket itself (a test's bucket, when it ends).
    pub async fn remove_bucket(&self) -> Result<(), BlobError> {
        for key in self.list("").await? {
            self.delete(&key).await?;
        }
        self.client.delete_bucket().bucket(&self.bucket).send().await.map_err(|e| err("delete bucket", &self.bucket, e))?;
        Ok(())
    }

    /// Is the server answering? (readiness)
    pub async fn ping(&self) -> bool {
        self.client.head_bucket().bucket(&self.bucket).send().await.is_ok()
    }
}

/// Keys, in one place.
pub mod keys {
    /// A file name reduced to letters, digits, '.', '_' and '-' (never empty, never dots only).
    pub fn safe_name(name: &str) -> String {
        let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect();
        if safe.chars().all(|c| c == '.') { format!("file{safe}_") } else { safe }
    }
    pub fn raw(mailing: &str, index: usize, name: &str) -> String {
        format!("raw/{mailing}/{index:03}-{}", safe_name(name))
    }
    pub fn piece(numero: Option<&str>, piece: &str) -> String {
        format!("pieces/{}/{piece}.pdf", numero.unwrap_or("sans-numero"))
    }
    pub fn report(mailing: &str) -> String {
        format!("reports/{mailing}.json")
    }
}
