//! `reports sandbox`: serve the five simulators on loopback until interrupted.

use std::time::Duration;

use report_sandbox::{Sandbox, SandboxConfig, Vendor};

use crate::cli::SandboxArgs;
use crate::failure::Failure;
use crate::vendors::{self, CliVendor, VendorVisitor};

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
    for vendor in Vendor::ALL {
        println!("{}", vendors::with_vendor(vendor, EnvLines(&sandbox)));
    }
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Failure::Local(format!("cannot wait for Ctrl-C: {e}")))?;
    sandbox.shutdown().await;
    Ok(())
}

/// A vendor's `export …` lines for the sandbox.
struct EnvLines<'a>(&'a Sandbox);

impl VendorVisitor for EnvLines<'_> {
    type Output = String;

    fn visit<V: CliVendor>(self) -> String {
        V::sandbox_env(self.0)
    }
}
