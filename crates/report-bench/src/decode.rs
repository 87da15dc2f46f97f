//! Where the CPU of one OFD.ru status request goes: a focused micro-benchmark behind the
//! `scale` benchmark's ratio.
//!
//! 1. Decoding: one recorded report-list answer of the sandbox (50 reports, the size `scale`
//!    polls) decoded in a loop by each path: the minimal loop's projection (`Id` and `Status`
//!    only), the generated types (`ReportListEnvelope`, what `OfdClient::reports` returns) and
//!    the status path of `OfdAdapter::poll` (the same types, borrowed, one entry copied out).
//! 2. Whole status requests, one at a time over a kept-alive connection to one sandbox account
//!    (in this process, on other threads): `OfdAdapter::poll` against the minimal reqwest loop's
//!    request and decoding, measured as this thread's CPU time.
//!
//! Every figure is a median over rounds that alternate the paths.

use std::sync::Arc;
use std::time::Duration;

use report_core::{ReportAdapter, Ticket};
use report_ofd::{OfdAdapter, OfdClient, OfdConfig};
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as creds};

use crate::stats::{Table, fmt_ratio, median};

#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Reports in the account (entries in each list answer).
    #[arg(long, default_value_t = 50)]
    pub reports: usize,
    /// Decodings per path per round.
    #[arg(long, default_value_t = 2000)]
    pub iterations: usize,
    /// Whole status requests per path per round.
    #[arg(long, default_value_t = 300)]
    pub polls: usize,
    /// Rounds (the paths alternate within each).
    #[arg(long, default_value_t = 7)]
    pub rounds: usize,
}

/// A named path, run once per call.
type Path<'a> = (&'static str, Box<dyn Fn() + 'a>);

/// CPU time of the calling thread.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid pointer to a timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// µs of this thread's CPU per call of `f`, over `n` calls.
fn per_call(n: usize, mut f: impl FnMut()) -> f64 {
    let began = thread_cpu();
    for _ in 0..n {
        f();
    }
    (thread_cpu() - began).as_secs_f64() * 1e6 / n.max(1) as f64
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    // The sandbox serves from its own threads; the measured client runs on this one.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let sandbox = server.block_on(Sandbox::start(SandboxConfig {
        // Reports stay pending for the whole benchmark: every poll reads the same list.
        job_duration: Duration::from_secs(3600),
        report_size: 1024,
        ..SandboxConfig::default()
    }))?;
    let base = sandbox.base_url(Vendor::Ofd);
    let config = OfdConfig::new(creds::OFD_LOGIN, creds::OFD_PASSWORD).with_base_url(&base);
    let adapter = Arc::new(OfdAdapter::new(OfdClient::new(config)?));

    let request = crate::scale::request();
    let mut tickets: Vec<Ticket> = Vec::with_capacity(args.reports);
    client_rt.block_on(async {
        for _ in 0..args.reports {
            tickets.push(adapter.start(&request).await?.ticket);
        }
        Ok::<_, report_core::Error>(())
    })?;
    // The last report started: the poll's search goes through the whole list.
    let id = tickets.last().map(|t| t.id.clone()).unwrap_or_default();
    let ticket = tickets.last().cloned().expect("at least one report");

    // The same answer as the minimal loop receives.
    let http = crate::http_client()?;
    let token = client_rt.block_on(crate::ofd_login(&http, &base))?;
    let list_url = format!("{base}/api/customer/reports?AuthToken={token}&SkipPageFilter=true");
    let body = client_rt.block_on(async {
        Ok::<_, anyhow::Error>(
            http.get(&list_url)
                .send()
                .await?
                .error_for_status()?
                .bytes()
                .await?,
        )
    })?;

    println!("## decode\n");
    println!(
        "One OFD.ru report-list answer of the sandbox: {} reports, {} bytes; {} rounds alternating the paths, median shown; CPU time of the measuring thread; machine: {}.\n",
        args.reports,
        body.len(),
        args.rounds,
        crate::proc::machine()
    );

    // 1. Decoding only.
    let decoders: [Path<'_>; 3] = [
        (
            "minimal loop: Id and Status only",
            Box::new(|| {
                std::hint::black_box(crate::scale::list_says_done(&body, &id, false).ok());
            }),
        ),
        (
            "generated types (ReportListEnvelope), as before",
            Box::new(|| {
                let answer: report_ofd::api::types::ReportListEnvelope =
                    serde_json::from_slice(&body).expect("the sandbox's answer decodes");
                let list = match answer.data {
                    Some(data) => data.list,
                    None => answer.list,
                };
                let found = list.into_iter().find(|r| {
                    r.id.as_deref()
                        .is_some_and(|own| own.eq_ignore_ascii_case(&id))
                });
                std::hint::black_box(found);
            }),
        ),
        (
            "status path now (same types, borrowed, one entry copied)",
            Box::new(|| {
                std::hint::black_box(report_ofd::__fuzz::find_report(&body, &id).ok());
            }),
        ),
    ];
    let mut decode_us = vec![Vec::new(); decoders.len()];
    for round in 0..args.rounds {
        for k in 0..decoders.len() {
            let i = (round + k) % decoders.len();
            decode_us[i].push(per_call(args.iterations, &decoders[i].1));
        }
    }
    let mut table = Table::new(["decoding one list answer", "CPU per answer", "× minimal"]);
    let base_decode = median(&decode_us[0]);
    for ((name, _), us) in decoders.iter().zip(&decode_us) {
        table.row([
            name.to_string(),
            format!("{:.1} µs", median(us)),
            fmt_ratio(median(us) / base_decode),
        ]);
    }
    println!("{}", table.render());

    // 2. Whole status requests, one at a time.
    let rt = &client_rt;
    let raw_poll = |typed: bool| {
        let http = &http;
        let list_url = &list_url;
        let id = &id;
        move || {
            rt.block_on(async {
                let body = http
                    .get(list_url)
                    .send()
                    .await
                    .and_then(reqwest::Response::error_for_status)
                    .expect("the sandbox answers");
                let body = body.bytes().await.expect("a body");
                std::hint::black_box(crate::scale::list_says_done(&body, id, typed).ok());
            })
        }
    };
    let adapter_poll = || {
        rt.block_on(async {
            std::hint::black_box(adapter.poll(&ticket).await.expect("a status"));
        })
    };
    // What `OfdAdapter::poll` did before: every report decoded into the generated types.
    let list_poll = || {
        rt.block_on(async {
            let reports = adapter.client().reports().await.expect("a list");
            let report = reports
                .iter()
                .find(|r| {
                    r.id.as_deref()
                        .is_some_and(|own| own.eq_ignore_ascii_case(&ticket.id))
                })
                .expect("the report is listed");
            std::hint::black_box(adapter.status_of(report, None));
        })
    };
    let pollers: [Path<'_>; 4] = [
        ("minimal reqwest loop", Box::new(raw_poll(false))),
        (
            "reqwest loop decoding the generated types",
            Box::new(raw_poll(true)),
        ),
        (
            "OfdClient::reports + find + status_of (the poll before)",
            Box::new(list_poll),
        ),
        ("OfdAdapter::poll", Box::new(adapter_poll)),
    ];
    // Warm up the connections and the token.
    for (_, poll) in &pollers {
        for _ in 0..20 {
            poll();
        }
    }
    let mut poll_us = vec![Vec::new(); pollers.len()];
    for round in 0..args.rounds {
        for k in 0..pollers.len() {
            let i = (round + k) % pollers.len();
            poll_us[i].push(per_call(args.polls, &pollers[i].1));
            sandbox.clear_requests();
        }
    }
    let mut table = Table::new([
        "one status request, sequential",
        "client CPU per request",
        "× minimal",
    ]);
    let base_poll = median(&poll_us[0]);
    for ((name, _), us) in pollers.iter().zip(&poll_us) {
        table.row([
            name.to_string(),
            format!("{:.1} µs", median(us)),
            fmt_ratio(median(us) / base_poll),
        ]);
    }
    println!("{}", table.render());
    for ((name, _), us) in pollers.iter().zip(&poll_us) {
        println!(
            "- {name}: rounds [{}] µs",
            us.iter()
                .map(|x| format!("{x:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!();
    server.block_on(sandbox.shutdown());
    Ok(())
}
