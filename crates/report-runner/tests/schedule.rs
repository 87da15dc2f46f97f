//! Schedules fired by apalis-cron queue one job per definition and period.

use std::time::Duration;

use report_runner::{ScheduleFile, Store, run_schedules};

const FILE: &str = r#"
[[schedule]]
name = "every-second"
vendor = "fake"
cron = "* * * * * *"
period = "yesterday"
timezone = "Europe/Moscow"
options = ["--from", "{from}", "--to", "{to}"]
out = "/tmp/{name}-{from}.csv"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_firing_many_times_from_two_runners_queues_one_job_per_period() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("jobs.sqlite").display().to_string())
        .await
        .unwrap();
    let file = ScheduleFile::parse(FILE).unwrap();
    // Two workers' schedulers fire every second for a while.
    let one = run_schedules(&file, store.clone());
    let two = run_schedules(&file, store.clone());
    let _ =
        tokio::time::timeout(Duration::from_millis(3500), futures::future::join(one, two)).await;

    let jobs = store.list().await.unwrap();
    assert_eq!(jobs.len(), 1, "fired ≥ 6 times, one period: {jobs:#?}");
    let yesterday = {
        let moscow: chrono_tz::Tz = "Europe/Moscow".parse().unwrap();
        (chrono::Utc::now().with_timezone(&moscow).date_naive() - chrono::Days::new(1)).to_string()
    };
    assert_eq!(jobs[0].out, format!("/tmp/every-second-{yesterday}.csv"));
    assert_eq!(jobs[0].request["args"][1], yesterday);

    // Firing again for the same period, directly: still one.
    let fired = chrono::Utc::now().timestamp();
    assert!(
        file.schedules[0]
            .fire(&store, fired)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(store.list().await.unwrap().len(), 1);
}
