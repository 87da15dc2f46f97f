//! Synchronous printing: the report endpoint without `async` answers the file itself, or a JSON
//! body that means an error.
//!
//! The spec cannot model this (one operation, one success body type, and the asynchronous JSON
//! mode already owns the endpoint), so it is written here with reqwest on the same endpoint and
//! the same body type. The file is streamed; only a JSON answer is looked at, and only its first
//! [`ERROR_BODY_LIMIT`] bytes: a small JSON object with an `opr_code` is MetaKocka's error
//! envelope, while JSON without one (or too large to be an envelope) is a `JSN` report.

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use report_core::__private::{self as http, ERROR_BODY_LIMIT, VendorProfile};
use report_core::{Compression, Download, Error, Result, excerpt};
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderMap};

use crate::api::types::{ErrorAnswer, ReportAnswer};
use crate::client::{MetaKockaClient, check_answer};
use crate::request::MetaKockaReportRequest;
use crate::{Profile, VENDOR};

const OPERATION: &str = "printReport (synchronous)";

impl MetaKockaClient {
    /// Prints a report synchronously and streams the file.
    ///
    /// The call lasts as long as MetaKocka takes to print (the HTTP read timeout applies while
    /// it prints); for long reports use the asynchronous [`Job`](report_core::Job) with
    /// [`MetaKockaAdapter`](crate::MetaKockaAdapter) instead. An error envelope becomes the
    /// typed error it describes, as in asynchronous mode.
    ///
    /// ```no_run
    /// # async fn demo(client: report_metakocka::MetaKockaClient) -> report_metakocka::Result<()> {
    /// use futures::StreamExt;
    /// use report_metakocka::{MetaKockaReportRequest, ReportFormat};
    ///
    /// let request = MetaKockaReportRequest::new("38", ReportFormat::Pdf).with_document("1600204439");
    /// let mut file = client.print(&request).await?;
    /// while let Some(chunk) = file.body.next().await {
    ///     let bytes = chunk?; // write them somewhere
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn print(&self, request: &MetaKockaReportRequest) -> Result<Download> {
        request.validate()?;
        let body = self.print_body(request, false);
        // The body holds the secret key: this goes to the base URL's origin only, and the
        // `files` client follows no redirect away from it.
        let http_request = self
            .files
            .post(self.report_url())
            .json(&body)
            .build()
            .map_err(|e| {
                Error::InvalidInput(format!(
                    "cannot build the print request: {}",
                    http::without_url(&e)
                ))
            })?;
        let response = http::traced_execute(&self.files, http_request, OPERATION)
            .await
            .map_err(|e| Profile::errors().transport(OPERATION, e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(error_status(response).await);
        }
        let headers = response.headers().clone();
        let total_size = response.content_length();
        let is_json =
            content_type(&headers).is_some_and(|t| t.to_ascii_lowercase().contains("json"));
        let mut stream = response.bytes_stream().map_err(|e| Error::Transport {
            operation: OPERATION.to_string(),
            maybe_sent: true,
            source: http::transport_cause(&e).into(),
        });
        let mut head = Vec::new();
        if is_json {
            while head.len() <= ERROR_BODY_LIMIT {
                match stream.next().await {
                    Some(chunk) => head.extend_from_slice(&chunk?),
                    None => {
                        reject_envelope(&head)?;
                        break;
                    }
                }
            }
        }
        // The file: whatever was read to tell it from an envelope, then the rest.
        let head = futures::stream::iter((!head.is_empty()).then(|| Ok(Bytes::from(head))));
        Ok(Download {
            file_name: http::content_disposition_file_name(&headers),
            content_type: content_type(&headers).map(str::to_string),
            total_size,
            offset: 0,
            compression: compression(&headers),
            body: head.chain(stream).boxed(),
        })
    }
}

/// A whole JSON answer: an error envelope becomes its error; other JSON is a `JSN` report.
pub fn reject_envelope(body: &[u8]) -> Result<()> {
    let decode = |message: String| Error::Decode {
        vendor: VENDOR,
        operation: OPERATION.to_string(),
        message,
        excerpt: excerpt(body),
        source: None,
    };
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| decode(format!("the JSON answer does not parse: {e}")))?;
    if value.get("opr_code").is_none() {
        return Ok(());
    }
    let answer: ReportAnswer = serde_json::from_value(value)
        .map_err(|e| decode(format!("unexpected error envelope: {e}")))?;
    check_answer(&answer)?;
    Err(decode(
        "a success envelope came instead of the file (was `async` ignored?)".into(),
    ))
}

/// An HTTP error status: MetaKocka's envelope if the body is one, else the page's excerpt.
pub async fn error_status(response: reqwest::Response) -> Error {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = match http::normalize_error_response(response, Profile::error_body_for).await {
        Ok(normalized) => http::read_limited(normalized, ERROR_BODY_LIMIT)
            .await
            .unwrap_or_default(),
        Err(e) => return Profile::errors().transport(OPERATION, e),
    };
    let answer: ErrorAnswer = serde_json::from_slice(&body).unwrap_or_default();
    Profile::errors().api(status, &headers, Profile::describe(&answer))
}

fn content_type(headers: &HeaderMap) -> Option<&str> {
    headers.get(CONTENT_TYPE).and_then(|v| v.to_str().ok())
}

fn compression(headers: &HeaderMap) -> Compression {
    let gzip = headers
        .get(CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("gzip"));
    if gzip {
        Compression::Gzip
    } else {
        Compression::None
    }
}
