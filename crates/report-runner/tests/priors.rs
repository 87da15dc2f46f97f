//! Learned durations kept in the job database, per vendor and report kind.

use std::time::Duration;

use report_runner::Store;

#[tokio::test]
async fn learned_durations_persist_per_vendor_and_kind() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("jobs.db").display());
    let store = Store::open(&url).await.unwrap();
    assert_eq!(store.prior("evovoice", "billing").await.unwrap(), None);
    for secs in [100, 120, 90] {
        let predicted = Some(Duration::from_secs(110));
        store
            .learn_duration("evovoice", "billing", Duration::from_secs(secs), predicted)
            .await
            .unwrap();
    }
    store
        .learn_duration("evovoice", "other", Duration::from_secs(5), None)
        .await
        .unwrap();
    drop(store);

    let store = Store::open(&url).await.unwrap();
    let prior = store.prior("evovoice", "billing").await.unwrap().unwrap();
    assert_eq!(prior.count(), 3);
    let earliest = prior.earliest().unwrap();
    assert!(earliest <= Duration::from_secs(90), "{earliest:?}");
    assert!(prior.eta_ratio_floor().unwrap() < 90.0 / 110.0);
    let other = store.prior("evovoice", "other").await.unwrap().unwrap();
    assert_eq!(other.count(), 1);
    assert_eq!(store.prior("cloudblue", "billing").await.unwrap(), None);
}
