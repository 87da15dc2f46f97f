//! Every vendor's adapter and a typical report request against a base URL (a running sandbox,
//! a stopped one, a mock), with the sandbox's demo credentials; the `*_config` builders take
//! the secret separately so tests can spoil it.

use report_cloudblue::{
    CloudBlueAdapter, CloudBlueClient, CloudBlueConfig, CloudBlueReportRequest, ReportFormat,
};
use report_docspace::{DocSpaceAdapter, DocSpaceClient, DocSpaceConfig, DocSpaceReportRequest};
use report_evovoice::{EvoVoiceAdapter, EvoVoiceClient, EvoVoiceConfig, EvoVoiceReportRequest};
use report_metakocka::{
    MetaKockaAdapter, MetaKockaClient, MetaKockaConfig, MetaKockaReportRequest,
};
use report_ofd::chrono::NaiveDate;
use report_ofd::{OfdAdapter, OfdClient, OfdConfig, OfdReportRequest, Registers, ReportType};
use report_sandbox::credentials as c;

/// A day of January 2024, the period every request here covers.
pub fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2024, 1, d).expect("a valid date")
}

pub fn ofd_config(base: &str, password: &str) -> OfdConfig {
    OfdConfig::new(c::OFD_LOGIN, password).with_base_url(base)
}

pub fn ofd_adapter(base: &str) -> OfdAdapter {
    let config = ofd_config(base, c::OFD_PASSWORD);
    OfdAdapter::new(OfdClient::new(config).expect("a valid OFD.ru config"))
}

pub fn ofd_request() -> OfdReportRequest {
    OfdReportRequest::for_days(ReportType::ReceiptReport, day(1), day(31), Registers::All)
}

pub fn docspace_adapter(base: &str, api_key: &str) -> DocSpaceAdapter {
    let config = DocSpaceConfig::new(base, api_key);
    DocSpaceAdapter::new(DocSpaceClient::new(config).expect("a valid DocSpace config"))
}

pub fn docspace_request() -> DocSpaceReportRequest {
    DocSpaceReportRequest::for_days(day(1), day(31))
}

pub fn evovoice_config(base: &str, password: &str) -> EvoVoiceConfig {
    EvoVoiceConfig::new(c::EVOVOICE_USERNAME, password).with_base_url(base)
}

pub fn evovoice_adapter(base: &str) -> EvoVoiceAdapter {
    let config = evovoice_config(base, c::EVOVOICE_PASSWORD);
    EvoVoiceAdapter::new(EvoVoiceClient::new(config).expect("a valid EvoVoice config"))
}

pub fn evovoice_request() -> EvoVoiceReportRequest {
    EvoVoiceReportRequest::new(c::EVOVOICE_ACCOUNT_ID, day(1), day(31))
}

pub fn cloudblue_config(base: &str, password: &str, subscription_key: &str) -> CloudBlueConfig {
    CloudBlueConfig::new(c::CLOUDBLUE_USERNAME, password, subscription_key)
        .with_base_url(base)
        .with_marketplace(c::CLOUDBLUE_MARKETPLACE)
}

pub fn cloudblue_adapter(base: &str) -> CloudBlueAdapter {
    let config = cloudblue_config(base, c::CLOUDBLUE_PASSWORD, c::CLOUDBLUE_SUBSCRIPTION_KEY);
    CloudBlueAdapter::new(CloudBlueClient::new(config).expect("a valid CloudBlue config"))
}

/// A JSON report named `name`: gzip on the wire from the blob origin, decompressed on the way
/// to disk.
pub fn cloudblue_request(name: &str) -> CloudBlueReportRequest {
    CloudBlueReportRequest::new(name, ReportFormat::Json, day(1), day(31))
}

pub fn metakocka_config(base: &str, secret_key: &str) -> MetaKockaConfig {
    MetaKockaConfig::new(c::METAKOCKA_COMPANY_ID, secret_key).with_base_url(base)
}

pub fn metakocka_adapter(base: &str) -> MetaKockaAdapter {
    let config = metakocka_config(base, c::METAKOCKA_SECRET_KEY);
    MetaKockaAdapter::new(MetaKockaClient::new(config).expect("a valid MetaKocka config"))
}

pub fn metakocka_request() -> MetaKockaReportRequest {
    MetaKockaReportRequest::new("149", report_metakocka::ReportFormat::Pdf)
}

/// A policy for the sandbox's quick reports: backoff from 50 ms doubling to 500 ms, and a
/// deadline of a minute.
pub fn quick_policy() -> report_core::WaitPolicy {
    report_core::WaitPolicy::default()
        .with_backoff(
            std::time::Duration::from_millis(50),
            std::time::Duration::from_millis(500),
        )
        .with_deadline(Some(std::time::Duration::from_secs(60)))
}

/// One whole lifecycle: start, wait, download into `dir/<vendor>`, delete (where the vendor
/// can). Returns the ticket's JSON. Panics, naming the vendor and the step, on any error.
pub async fn lifecycle<A: report_core::ReportAdapter>(
    adapter: A,
    request: &A::Request,
    policy: report_core::WaitPolicy,
    dir: &std::path::Path,
) -> String {
    let vendor = adapter.vendor();
    let job = report_core::Job::start(adapter, request, policy)
        .await
        .unwrap_or_else(|e| panic!("{vendor}: start: {e:?}"));
    let artifact = job
        .wait()
        .await
        .unwrap_or_else(|e| panic!("{vendor}: wait: {e:?}"));
    job.download_to(&artifact, dir.join(vendor), Default::default())
        .await
        .unwrap_or_else(|e| panic!("{vendor}: download: {e:?}"));
    match job.delete().await {
        Ok(()) | Err(report_core::Error::Unsupported { .. }) => {}
        Err(e) => panic!("{vendor}: delete: {e:?}"),
    }
    job.ticket().to_json()
}
