//! `kham`: the teleconsultation media server (signaling, SFU, web client) in one binary.

mod admin;
mod config;
mod cpu;
mod http_limits;
mod ice_tcp;
mod logging;
mod media_stats;
mod metrics;
mod monitor;
mod observer;
mod recv_batch;
mod send_batch;
mod serve;
mod shard;
mod tokens;
mod udp;
mod web;
mod webhooks;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "kham", version, about = "Video teleconsultation media server")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the server.
    Serve {
        /// TOML file layered over the embedded default (config/kham.toml).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Use the development API key and secret and print demo join links.
        #[arg(long)]
        dev: bool,
    },
    /// Access tokens.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Mint an access token signed with the configured API secret.
    Create(tokens::CreateArgs),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.cmd {
        Cmd::Serve { config, dev } => serve::run(config.as_deref(), dev),
        Cmd::Token {
            cmd: TokenCmd::Create(args),
        } => tokens::create(args),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kham: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
