//! DocSpace as a [`report_core::ReportAdapter`]: one report task per portal user, started with
//! POST, watched with GET, terminated with DELETE; the result file is downloaded from
//! Documents by its id.
//!
//! Because the task has no id of its own (GET and DELETE take none, and the task id is the same
//! for every task of a user), a job follows "the user's current task". Two things keep it from
//! following someone else's report by mistake: a start first checks that no task is running
//! (and refuses with [`DocSpaceErrorCode::TaskAlreadyRunning`] unless the request opts in to
//! attaching), and a poll refuses a task id other than the ticket's (another user or portal).
//!
//! A later start replaces a finished task under the same id, so the ticket also records what
//! identifies its report: the requested period (DocSpace names the file "Customer operations
//! report ({from}-{to}).xlsx") and, when the caller adds it, the result file's id. A completed
//! task whose file names another period ends the job with
//! [`DocSpaceErrorCode::TaskReplaced`]; a ticket that knows its file id gets that file,
//! whatever the task holds now.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use report_core::{
    Artifact, Compression, Download, Error, Progress, ReportAdapter, Result, Started, Status,
    Ticket,
};

use crate::VENDOR;
use crate::client::DocSpaceClient;
use crate::client::{DocSpaceErrorCode, own_error};
use crate::generated::types::{self, OperationStatus};
use crate::lenient::{FileId, OperationType, SortOrder, TaskStatus};

/// Artifact key of the result file's id.
const FILE_ID: &str = "file_id";
/// Artifact key of the web-editor URL (informative: not a download link).
const EDITOR_URL: &str = "editor_url";
/// Ticket keys of the requested period (`YYYY-MM-DD`), when the request had one.
const PERIOD_FROM: &str = "period_from";
const PERIOD_TO: &str = "period_to";
/// Ticket key of the result file's id, when known (the same key as the artifact's): set it
/// with `ticket.with("file_id", …)` once the report is ready to pin the ticket to that file.
pub const TICKET_FILE_ID: &str = FILE_ID;

/// Filters of a customer operations report. Every filter is optional: the default reports
/// every operation since the portal was created.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DocSpaceReportRequest {
    /// Start of the period.
    pub start_date: Option<DateTime<Utc>>,
    /// End of the period.
    pub end_date: Option<DateTime<Utc>>,
    /// Only operations of this participant (customer).
    pub participant_name: Option<String>,
    /// Include credit operations.
    pub credit: Option<bool>,
    /// Include debit operations.
    pub debit: Option<bool>,
    /// Only operations of this service.
    pub service_name: Option<String>,
    /// Only operations of this type (the body's `type`).
    pub operation_type: Option<String>,
    /// Only operations in this state.
    pub status: Option<OperationStatus>,
    /// Field to sort by.
    pub order_by: Option<String>,
    /// Sort direction.
    pub order_type: Option<SortOrder>,
    /// When a report task of this user is already running, follow it instead of refusing to
    /// start. DocSpace would return the running task anyway, whatever filters it was started
    /// with: this flag says that is what you want.
    pub attach_to_running: bool,
}

impl DocSpaceReportRequest {
    /// Every operation since the portal was created.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whole days in UTC: `from` 00:00:00 to `to` 23:59:59 (as the vendor's example does).
    pub fn for_days(from: NaiveDate, to: NaiveDate) -> Self {
        let end = NaiveTime::from_hms_opt(23, 59, 59).expect("a valid time");
        DocSpaceReportRequest {
            start_date: Some(from.and_time(NaiveTime::MIN).and_utc()),
            end_date: Some(to.and_time(end).and_utc()),
            ..Self::default()
        }
    }

    /// Only operations of this participant.
    pub fn with_participant(mut self, name: impl Into<String>) -> Self {
        self.participant_name = Some(name.into());
        self
    }

    /// Follow an already running task instead of refusing (see [`Self::attach_to_running`]).
    pub fn attaching_to_running(mut self) -> Self {
        self.attach_to_running = true;
        self
    }

    /// Checks the request before anything is sent.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(Error::InvalidInput(m));
        if let (Some(start), Some(end)) = (self.start_date, self.end_date)
            && start > end
        {
            return bad(format!(
                "the period starts ({}) after it ends ({})",
                start.to_rfc3339(),
                end.to_rfc3339()
            ));
        }
        for (name, value) in [
            ("participant name", &self.participant_name),
            ("service name", &self.service_name),
            ("operation type", &self.operation_type),
            ("order-by field", &self.order_by),
        ] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return bad(format!("the {name} is blank: leave it out to include all"));
            }
        }
        if self.credit == Some(false) && self.debit == Some(false) {
            return bad(
                "both credit and debit operations are excluded: the report would be empty".into(),
            );
        }
        Ok(())
    }

    /// The request body DocSpace expects.
    pub fn body(&self) -> types::CustomerOperationsReportRequest {
        types::CustomerOperationsReportRequest {
            start_date: self.start_date,
            end_date: self.end_date,
            participant_name: self.participant_name.clone(),
            credit: self.credit,
            debit: self.debit,
            service_name: self.service_name.clone(),
            type_: self.operation_type.clone().map(OperationType::Name),
            status: self.status,
            order_by: self.order_by.clone(),
            order_type: self.order_type,
        }
    }
}

/// The DocSpace report job adapter.
#[derive(Clone, Debug)]
pub struct DocSpaceAdapter {
    client: DocSpaceClient,
    /// The body of a start whose answer was lost after it may have reached the server. Retrying
    /// that same start must not be refused because of the task it started.
    lost_start: Arc<Mutex<Option<types::CustomerOperationsReportRequest>>>,
}

impl DocSpaceAdapter {
    pub fn new(client: DocSpaceClient) -> Self {
        DocSpaceAdapter {
            client,
            lost_start: Arc::default(),
        }
    }

    /// The client underneath.
    pub fn client(&self) -> &DocSpaceClient {
        &self.client
    }

    /// The job status a task means.
    pub fn status_of(&self, task: &types::DocumentBuilderTaskDto) -> Status {
        let error = task
            .error
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty());
        match &task.status {
            TaskStatus::Completed => self.finished(task),
            TaskStatus::Failed => failed(task, error),
            TaskStatus::Canceled => Status::Cancelled,
            TaskStatus::Created | TaskStatus::Running => pending(task),
            TaskStatus::Unknown(state) if task.is_completed == Some(true) => {
                // An unknown final state: decide by what the task carries.
                tracing::warn!(state = %state, "unknown DocSpace task state, completed");
                match error {
                    Some(_) => failed(task, error),
                    None => self.finished(task),
                }
            }
            TaskStatus::Unknown(state) => {
                tracing::warn!(state = %state, "unknown DocSpace task state; still waiting");
                pending(task)
            }
        }
    }

    fn finished(&self, task: &types::DocumentBuilderTaskDto) -> Status {
        match &task.result_file_id {
            Some(file_id) => Status::Ready(self.artifact(task, file_id)),
            None => Status::Failed {
                code: Some(DocSpaceErrorCode::NoResultFile.to_string()),
                message: format!(
                    "DocSpace task {} completed without a result file id",
                    task.id
                ),
            },
        }
    }

    /// The result file. Its `url` is the file handler (a real download on the portal's
    /// origin); [`open`](ReportAdapter::open) first asks for a fresh pre-signed URL by the
    /// file id kept in `data`.
    fn artifact(&self, task: &types::DocumentBuilderTaskDto, file_id: &FileId) -> Artifact {
        let mut data = BTreeMap::new();
        data.insert(FILE_ID.to_string(), file_id.to_string());
        if let Some(editor) = task.result_file_url.as_deref().filter(|u| !u.is_empty()) {
            data.insert(EDITOR_URL.to_string(), editor.to_string());
        }
        let file_name = task
            .result_file_name
            .clone()
            .filter(|n| !n.trim().is_empty());
        let format = file_name
            .as_deref()
            .and_then(|n| n.rsplit_once('.'))
            .map(|(_, ext)| ext.to_ascii_lowercase())
            .or_else(|| Some("xlsx".to_string()));
        Artifact {
            url: self.client.file_handler_url(file_id).to_string(),
            file_name,
            format,
            size: None,
            compression: Compression::None,
            authenticated: true,
            data,
        }
    }

    fn started(
        &self,
        task: &types::DocumentBuilderTaskDto,
        request: Option<&DocSpaceReportRequest>,
    ) -> Started {
        let mut ticket = Ticket::new(VENDOR, task.id.clone(), Utc::now());
        if let Some(request) = request {
            for (key, date) in [
                (PERIOD_FROM, request.start_date),
                (PERIOD_TO, request.end_date),
            ] {
                if let Some(date) = date {
                    ticket = ticket.with(key, date.date_naive().to_string());
                }
            }
        }
        Started {
            status: Some(self.status_for(&ticket, task)),
            ticket,
        }
    }

    /// The status of `ticket`'s report, given the user's current task.
    fn status_for(&self, ticket: &Ticket, task: &types::DocumentBuilderTaskDto) -> Status {
        let status = self.status_of(task);
        let Status::Ready(artifact) = &status else {
            return status;
        };
        if let Some(file_id) = ticket.get(FILE_ID)
            && artifact.data.get(FILE_ID).map(String::as_str) != Some(file_id)
        {
            // The ticket knows its file: fetch that one, not the task's newer file.
            let file_id = FileId::from(file_id);
            let mut artifact = artifact.clone();
            artifact.url = self.client.file_handler_url(&file_id).to_string();
            artifact.file_name = None;
            artifact.data = BTreeMap::from([(FILE_ID.to_string(), file_id.to_string())]);
            return Status::Ready(artifact);
        }
        match replaced_by(ticket, task.result_file_name.as_deref().unwrap_or_default()) {
            Some(message) => Status::Failed {
                code: Some(DocSpaceErrorCode::TaskReplaced.to_string()),
                message,
            },
            None => status,
        }
    }

    /// What a start of `request` that was cut short left, judged by the user's current task.
    /// DocSpace keeps one task per user and a start replaces a finished one: a running task is
    /// ours; a finished one whose file names another period means ours never arrived; a
    /// finished one of our period may be ours or an older one, which cannot be told.
    fn left_by_a_cut_start(
        &self,
        request: &DocSpaceReportRequest,
        task: Option<types::DocumentBuilderTaskDto>,
    ) -> Result<Option<Ticket>> {
        let Some(task) = task else {
            return Ok(None);
        };
        let ours = self.started(&task, Some(request)).ticket;
        if is_running(&task) {
            return Ok(Some(ours));
        }
        match replaced_by(&ours, task.result_file_name.as_deref().unwrap_or_default()) {
            Some(_) => Ok(None),
            None => Err(Error::Unsupported {
                vendor: VENDOR,
                operation: "telling a finished task from an older one of the same period",
            }),
        }
    }

    /// Whether this start retries one whose answer was lost (and forgets it either way).
    fn retries_lost_start(&self, body: &types::CustomerOperationsReportRequest) -> bool {
        let mut lost = self.lost_start.lock().unwrap_or_else(|p| p.into_inner());
        lost.take().is_some_and(|previous| previous == *body)
    }

    fn remember_lost_start(&self, body: types::CustomerOperationsReportRequest) {
        *self.lost_start.lock().unwrap_or_else(|p| p.into_inner()) = Some(body);
    }
}

/// Why a completed task's file is not the ticket's report, if its name says so: the name
/// carries dates ("Customer operations report (01.02.2026-28.02.2026).xlsx") and they are not
/// the ticket's period. A name without dates, or a ticket without a period, tells nothing.
fn replaced_by(ticket: &Ticket, file_name: &str) -> Option<String> {
    let wanted: Vec<NaiveDate> = [PERIOD_FROM, PERIOD_TO]
        .iter()
        .filter_map(|key| ticket.get(key)?.parse().ok())
        .collect();
    let named = dates_in(file_name);
    if wanted.is_empty() || named.is_empty() {
        return None;
    }
    // A day either way: the portal may name the period in its own time zone.
    let close = |a: NaiveDate, b: NaiveDate| (a - b).num_days().abs() <= 1;
    if wanted.iter().all(|w| named.iter().any(|n| close(*w, *n))) {
        return None;
    }
    let period: Vec<String> = wanted.iter().map(NaiveDate::to_string).collect();
    Some(format!(
        "the user's report task now holds another report (\"{file_name}\"), not this ticket's \
         ({}): DocSpace keeps one task per user and a later start replaced it; start this report again",
        period.join(" to ")
    ))
}

/// The dates written in a file name (`31.01.2024`, `2024-01-31`, `31/01/2024`).
fn dates_in(name: &str) -> Vec<NaiveDate> {
    let mut dates = Vec::new();
    let chars: Vec<char> = name.chars().collect();
    for start in 0..chars.len() {
        for len in 8..=10 {
            let Some(piece) = chars.get(start..start + len) else {
                continue;
            };
            let piece: String = piece.iter().collect();
            for format in ["%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y"] {
                if let Ok(date) = NaiveDate::parse_from_str(&piece, format)
                    && !dates.contains(&date)
                {
                    dates.push(date);
                }
            }
        }
    }
    dates
}

/// Whether the task is still being built (unknown states count as running).
fn is_running(task: &types::DocumentBuilderTaskDto) -> bool {
    match task.status {
        TaskStatus::Unknown(_) => task.is_completed != Some(true),
        ref known => known.is_active(),
    }
}

fn pending(task: &types::DocumentBuilderTaskDto) -> Status {
    Status::Pending(Progress {
        vendor_state: task.status.to_string(),
        fraction: task.percentage.map(|p| f64::from(p.clamp(0, 100)) / 100.0),
        ..Progress::default()
    })
}

fn failed(task: &types::DocumentBuilderTaskDto, error: Option<&str>) -> Status {
    Status::Failed {
        code: None,
        message: error.map_or_else(
            || format!("DocSpace could not build the report (task {})", task.id),
            str::to_string,
        ),
    }
}

impl ReportAdapter for DocSpaceAdapter {
    type Request = DocSpaceReportRequest;

    fn vendor(&self) -> &'static str {
        VENDOR
    }

    /// A repeated start returns the running task, so a start whose answer was lost is safely
    /// retried.
    fn start_is_idempotent(&self) -> bool {
        true
    }

    async fn start(&self, request: &DocSpaceReportRequest) -> Result<Started> {
        request.validate()?;
        let body = request.body();
        if !self.retries_lost_start(&body)
            && let Some(task) = self.client.current_task().await?
            && is_running(&task)
        {
            if request.attach_to_running {
                tracing::info!(task = %task.id, "attaching to the running DocSpace report task");
                return Ok(self.started(&task, None));
            }
            return Err(own_error(
                DocSpaceErrorCode::TaskAlreadyRunning,
                format!(
                    "a customer operations report of this user is already being built (task {}, {} at {}%); \
                     starting now would only return it, whatever its filters: wait for it, cancel it, \
                     or set attach_to_running to follow it",
                    task.id,
                    task.status,
                    task.percentage.unwrap_or(0)
                ),
            ));
        }
        match self.client.start_task(&body).await {
            Ok(task) => Ok(self.started(&task, Some(request))),
            Err(e) => {
                if e.is_transient() && e.request_maybe_sent() {
                    self.remember_lost_start(body);
                }
                Err(e)
            }
        }
    }

    /// DocSpace keeps one report task per user: a start whose answer was lost is the user's
    /// running task. No task at all: the start never arrived. A finished task cannot be told
    /// apart from an older one (task ids repeat per user, tasks carry no time): unknown.
    async fn find_started(
        &self,
        request: &DocSpaceReportRequest,
        since: chrono::DateTime<Utc>,
    ) -> Result<Option<Ticket>> {
        let _ = since;
        let task = self.client.current_task().await?;
        self.left_by_a_cut_start(request, task)
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        ticket.expect_vendor(VENDOR)?;
        match self.client.current_task().await? {
            None => Ok(Status::Failed {
                code: Some(DocSpaceErrorCode::TaskNotFound.to_string()),
                message: format!(
                    "DocSpace has no report task {} any more (terminated, expired, or the portal restarted)",
                    ticket.id
                ),
            }),
            Some(task) if !task.id.eq_ignore_ascii_case(&ticket.id) => Err(Error::Ticket(format!(
                "the ticket is for task {}, but this API key's current task is {} (another user or portal?)",
                ticket.id, task.id
            ))),
            Some(task) => Ok(self.status_for(ticket, &task)),
        }
    }

    async fn cancel(&self, ticket: &Ticket) -> Result<()> {
        ticket.expect_vendor(VENDOR)?;
        self.client.terminate_task().await.map(|_| ())
    }

    async fn open(&self, artifact: &Artifact, offset: u64) -> Result<Download> {
        let file_id: FileId = artifact
            .data
            .get(FILE_ID)
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "the artifact has no `{FILE_ID}`: not a DocSpace artifact?"
                ))
            })?
            .as_str()
            .into();
        self.client.open_file(&file_id, offset).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DocSpaceConfig;

    fn adapter() -> DocSpaceAdapter {
        DocSpaceAdapter::new(
            DocSpaceClient::new(DocSpaceConfig::new("https://portal.example", "sk-1")).unwrap(),
        )
    }

    fn task(status: TaskStatus) -> types::DocumentBuilderTaskDto {
        types::DocumentBuilderTaskDto {
            id: "DocumentBuilderTask_1_u".into(),
            error: Some(String::new()),
            percentage: Some(60),
            is_completed: Some(false),
            status,
            result_file_id: None,
            result_file_name: None,
            result_file_url: None,
        }
    }

    #[test]
    fn a_cut_start_is_judged_by_the_users_current_task() {
        let adapter = adapter();
        let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
        let january = DocSpaceReportRequest::for_days(day(1), day(31));
        let finished = |name: &str| types::DocumentBuilderTaskDto {
            is_completed: Some(true),
            percentage: Some(100),
            result_file_name: Some(name.into()),
            ..task(TaskStatus::Completed)
        };
        // No task: nothing was started.
        assert!(matches!(
            adapter.left_by_a_cut_start(&january, None),
            Ok(None)
        ));
        // A running task is ours (a start while one runs would only have returned it).
        let running = adapter
            .left_by_a_cut_start(&january, Some(task(TaskStatus::Running)))
            .unwrap()
            .expect("the running task");
        assert_eq!(running.id, "DocumentBuilderTask_1_u");
        // A finished report of another period: ours would have replaced it, so ours never came.
        let december = finished("Customer operations report (01.12.2023-31.12.2023).xlsx");
        assert!(matches!(
            adapter.left_by_a_cut_start(&january, Some(december)),
            Ok(None)
        ));
        // A finished report of our period, or one whose name tells no period: ours or an older
        // one, which cannot be told.
        for name in [
            "Customer operations report (01.01.2024-31.01.2024).xlsx",
            "Report.xlsx",
        ] {
            let err = adapter
                .left_by_a_cut_start(&january, Some(finished(name)))
                .unwrap_err();
            assert!(matches!(err, Error::Unsupported { .. }), "{name}: {err}");
        }
    }

    #[test]
    fn reversed_periods_and_empty_reports_are_refused() {
        let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
        assert!(
            DocSpaceReportRequest::for_days(day(1), day(31))
                .validate()
                .is_ok()
        );
        assert!(
            DocSpaceReportRequest::for_days(day(1), day(1))
                .validate()
                .is_ok()
        );
        let err = DocSpaceReportRequest::for_days(day(31), day(1))
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("after it ends"), "{err}");
        let none = DocSpaceReportRequest {
            credit: Some(false),
            debit: Some(false),
            ..Default::default()
        };
        assert!(matches!(none.validate(), Err(Error::InvalidInput(_))));
        let blank = DocSpaceReportRequest::everything().with_participant("  ");
        assert!(matches!(blank.validate(), Err(Error::InvalidInput(_))));
    }

    #[test]
    fn the_body_leaves_out_what_is_not_set() {
        let body = serde_json::to_value(DocSpaceReportRequest::everything().body()).unwrap();
        assert_eq!(body, serde_json::json!({}));
        let day = |d| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
        let body =
            serde_json::to_value(DocSpaceReportRequest::for_days(day(1), day(31)).body()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"startDate": "2024-01-01T00:00:00Z", "endDate": "2024-01-31T23:59:59Z"})
        );
    }

    #[test]
    fn statuses_map_to_job_states() {
        let a = adapter();
        match a.status_of(&task(TaskStatus::Running)) {
            Status::Pending(p) => {
                assert_eq!(p.fraction, Some(0.6));
                assert_eq!(p.vendor_state, "Running");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(a.status_of(&task(TaskStatus::Canceled)), Status::Cancelled);
        let mut broken = task(TaskStatus::Failed);
        broken.error = Some("Tariff service is not configured".into());
        assert!(matches!(
            a.status_of(&broken),
            Status::Failed { message, .. } if message == "Tariff service is not configured"
        ));
        let mut done = task(TaskStatus::Completed);
        assert!(
            matches!(a.status_of(&done), Status::Failed { code: Some(c), .. } if c == "NoResultFile")
        );
        done.result_file_id = Some(FileId::Number(77));
        done.result_file_name = Some("Report.XLSX".into());
        let Status::Ready(artifact) = a.status_of(&done) else {
            panic!()
        };
        assert_eq!(artifact.data[FILE_ID], "77");
        assert_eq!(artifact.format.as_deref(), Some("xlsx"));
        assert!(artifact.authenticated);
        let mut odd = task(TaskStatus::Unknown("9".into()));
        assert!(matches!(a.status_of(&odd), Status::Pending(p) if p.vendor_state == "9"));
        odd.is_completed = Some(true);
        odd.error = Some("boom".into());
        assert!(matches!(a.status_of(&odd), Status::Failed { .. }));
    }

    #[test]
    fn only_active_tasks_block_a_start() {
        assert!(is_running(&task(TaskStatus::Created)));
        assert!(is_running(&task(TaskStatus::Unknown("Paused".into()))));
        assert!(!is_running(&task(TaskStatus::Completed)));
        assert!(!is_running(&task(TaskStatus::Failed)));
        let mut done_unknown = task(TaskStatus::Unknown("9".into()));
        done_unknown.is_completed = Some(true);
        assert!(!is_running(&done_unknown));
    }
}
