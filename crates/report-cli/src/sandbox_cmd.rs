//! `reports sandbox`: serve the five simulators on loopback until interrupted.

use std::time::Duration;

use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as c};

use crate::cli::SandboxArgs;
use crate::failure::Failure;

pub async fn run(args: SandboxArgs) -> Result<(), Failure> {
    let config = SandboxConfig {
        job_duration: Duration::from_millis(args.job_ms),
        report_size: args.size,
        base_port: args.port,
        ..SandboxConfig::default()
    };
    let sandbox = Sandbox::start(config)
        .await
        .map_err(|e| Failure::Local(format!("cannot start the sandbox: {e}")))?;
    println!("# The sandbox serves until Ctrl-C. Paste these lines into a shell to use it:");
    println!(
        "# ({}; reports live in memory: a restarted sandbox knows no earlier ticket)",
        match args.port {
            Some(_) => "fixed ports (--port): these lines stay valid after a restart",
            None => "ports are new on every start; --port PORT fixes them",
        }
    );
    println!(
        "export OFD_BASE_URL={} OFD_LOGIN={} OFD_PASSWORD={}",
        sandbox.base_url(Vendor::Ofd),
        c::OFD_LOGIN,
        c::OFD_PASSWORD
    );
    println!(
        "export DOCSPACE_BASE_URL={} DOCSPACE_API_KEY={}",
        sandbox.base_url(Vendor::DocSpace),
        c::DOCSPACE_API_KEY
    );
    println!(
        "export EVOVOICE_BASE_URL={} EVOVOICE_USERNAME={} EVOVOICE_PASSWORD={}",
        sandbox.base_url(Vendor::EvoVoice),
        c::EVOVOICE_USERNAME,
        c::EVOVOICE_PASSWORD
    );
    println!(
        "export CLOUDBLUE_BASE_URL={} CLOUDBLUE_USERNAME={} CLOUDBLUE_PASSWORD={} CLOUDBLUE_SUBSCRIPTION_KEY={} CLOUDBLUE_MARKETPLACE={}",
        sandbox.base_url(Vendor::CloudBlue),
        c::CLOUDBLUE_USERNAME,
        c::CLOUDBLUE_PASSWORD,
        c::CLOUDBLUE_SUBSCRIPTION_KEY,
        c::CLOUDBLUE_MARKETPLACE
    );
    println!(
        "export METAKOCKA_BASE_URL={} METAKOCKA_SECRET_KEY={} METAKOCKA_COMPANY_ID={}",
        sandbox.base_url(Vendor::MetaKocka),
        c::METAKOCKA_SECRET_KEY,
        c::METAKOCKA_COMPANY_ID
    );
    println!(
        "# OFD demo account: --inn {} --kpp {}; EvoVoice account: --account-id {}",
        c::OFD_INN,
        c::OFD_KPP,
        c::EVOVOICE_ACCOUNT_ID
    );
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Failure::Local(format!("cannot wait for Ctrl-C: {e}")))?;
    sandbox.shutdown().await;
    Ok(())
}
