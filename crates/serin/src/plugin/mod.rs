//! `kubectl serin`: the kubectl plugin (the `kubectl-serin` binary, which kubectl finds on
//! PATH). Read-only views of Canaries for the people on call:
//!
//! * `get [NAME]`: a table of canaries with a progress bar of weight / maxWeight (iterations
//!   for A/B testing and blue/green);
//! * `status NAME`: the timeline of the current run from the Canary's events and decisions;
//! * `why NAME`: the last decisions of the record (`status.decisions`), values against
//!   thresholds;
//! * `promote`, `abort`, `retry`, `pause`, `resume NAME`: requests the controller acts on
//!   ([`actions`]).
//!
//! It reads the kubeconfig as kubectl does (`--kubeconfig`, `--context`, `-n`, `-A`). The
//! rendering is pure ([`render`]); this module only fetches.

pub mod actions;
pub mod render;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use k8s_openapi::api::core::v1::Event;
use kube::Api;
use kube::api::ListParams;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::api::Canary;
use crate::controller::ports::{Clock, SystemClock};
use crate::k8s;

/// Canary views and requests for kubectl: `kubectl serin get|status|why|promote|abort|retry|pause|resume`.
#[derive(Debug, Parser)]
#[command(name = "kubectl-serin", bin_name = "kubectl serin", version)]
pub struct Args {
    /// Path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Namespace (default: the context's).
    #[arg(short = 'n', long, global = true)]
    pub namespace: Option<String>,
    /// All namespaces (`get` only).
    #[arg(short = 'A', long, global = true)]
    pub all_namespaces: bool,
    #[command(subcommand)]
    pub command: PluginCommand,
}

#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// List canaries with their phase and progress.
    Get {
        /// One canary only.
        name: Option<String>,
    },
    /// The timeline of a canary's current run (events and decisions).
    Status { name: String },
    /// The last decisions of a canary: each check's value against its threshold range, the
    /// webhook answers and the step taken.
    Why {
        name: String,
        /// How many ticks to show, newest last.
        #[arg(long, default_value_t = 3)]
        last: usize,
        /// Show each check's rendered query.
        #[arg(long)]
        queries: bool,
    },
    /// Skip the rest of the analysis and promote (the confirm-promotion gate still decides
    /// unless --force).
    Promote {
        name: String,
        /// Promote past a closed confirm-promotion gate.
        #[arg(long)]
        force: bool,
    },
    /// Roll back now: all traffic to the primary, the canary scaled to zero, phase Failed.
    Abort { name: String },
    /// Analyse a Failed revision again from the start.
    Retry { name: String },
    /// Hold the run where it is (no step, no check, no weight change) until resumed.
    Pause { name: String },
    /// End a pause.
    Resume { name: String },
}

impl PluginCommand {
    /// The write command and its canary, if this is one.
    fn write(&self) -> Option<(actions::Write, &str)> {
        use actions::Write;
        match self {
            PluginCommand::Get { .. }
            | PluginCommand::Status { .. }
            | PluginCommand::Why { .. } => None,
            PluginCommand::Promote { name, force } => {
                Some((Write::Promote { force: *force }, name))
            }
            PluginCommand::Abort { name } => Some((Write::Abort, name)),
            PluginCommand::Retry { name } => Some((Write::Retry, name)),
            PluginCommand::Pause { name } => Some((Write::Pause, name)),
            PluginCommand::Resume { name } => Some((Write::Resume, name)),
        }
    }
}

/// Why a command could not answer.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read the kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("{0}")]
    Api(String),
    #[error("canary {name} not found in namespace {namespace}")]
    NotFound { name: String, namespace: String },
}

/// The plugin's entry point.
pub fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs one command and returns what to print.
pub async fn run(args: &Args) -> Result<String, PluginError> {
    let session = connect(args).await?;
    let client = session.client;
    let namespace = args.namespace.clone().unwrap_or(session.namespace);
    let now = SystemClock.now();
    if let Some((write, name)) = args.command.write() {
        let canary = get(&client, &namespace, name).await?;
        let by = actions::whoami(&client, session.user.as_deref()).await;
        let id = actions::request_id(now);
        return match actions::patch_for(write, &canary, &by, &id) {
            Ok(patch) => {
                actions::send(&client, &namespace, name, &by, &patch).await?;
                Ok(actions::confirmation(write, &canary, &by, &id))
            }
            Err(nothing_to_do) => Ok(format!("{nothing_to_do}\n")),
        };
    }
    match &args.command {
        PluginCommand::Get { name } => {
            let canaries = match name {
                Some(n) => vec![get(&client, &namespace, n).await?],
                None => list(&client, &namespace, args.all_namespaces).await?,
            };
            Ok(render::table(&canaries, args.all_namespaces, now))
        }
        PluginCommand::Status { name } => {
            let canary = get(&client, &namespace, name).await?;
            let events = events(&client, &namespace, name).await?;
            Ok(render::timeline(&canary, &events))
        }
        PluginCommand::Why {
            name,
            last,
            queries,
        } => {
            let canary = get(&client, &namespace, name).await?;
            Ok(render::why(&canary, *last, *queries))
        }
        PluginCommand::Promote { .. }
        | PluginCommand::Abort { .. }
        | PluginCommand::Retry { .. }
        | PluginCommand::Pause { .. }
        | PluginCommand::Resume { .. } => Ok(String::new()),
    }
}

/// A client, its default namespace and the kubeconfig's user.
struct Session {
    client: kube::Client,
    namespace: String,
    /// The user the kubeconfig names: its `as` when it impersonates, else the context's user
    /// (`None` in a pod, without a kubeconfig).
    user: Option<String>,
}

/// A client and the default namespace, from the kubeconfig as kubectl reads it.
async fn connect(args: &Args) -> Result<Session, PluginError> {
    let options = KubeConfigOptions {
        context: args.context.clone(),
        ..Default::default()
    };
    let file = match &args.kubeconfig {
        Some(path) => Some(
            Kubeconfig::read_from(path)
                .map_err(|e| PluginError::Kubeconfig(format!("{}: {e}", path.display())))?,
        ),
        None => Kubeconfig::read().ok(),
    };
    let user = file
        .as_ref()
        .and_then(|kc| kubeconfig_user(kc, args.context.as_deref()));
    let config = match (&args.kubeconfig, file) {
        (Some(_), Some(kc)) => kube::Config::from_custom_kubeconfig(kc, &options)
            .await
            .map_err(|e| PluginError::Kubeconfig(e.to_string()))?,
        _ if args.context.is_some() => kube::Config::from_kubeconfig(&options)
            .await
            .map_err(|e| PluginError::Kubeconfig(e.to_string()))?,
        _ => kube::Config::infer()
            .await
            .map_err(|e| PluginError::Kubeconfig(e.to_string()))?,
    };
    let namespace = config.default_namespace.clone();
    let client =
        kube::Client::try_from(config).map_err(|e| PluginError::Kubeconfig(e.to_string()))?;
    Ok(Session {
        client,
        namespace,
        user,
    })
}

/// The user of the kubeconfig's `context` (else its current context): the impersonated user
/// when the user entry has `as`, else the user entry's name.
fn kubeconfig_user(kc: &Kubeconfig, context: Option<&str>) -> Option<String> {
    let name = context.or(kc.current_context.as_deref())?;
    let user = kc
        .contexts
        .iter()
        .find(|c| c.name == name)?
        .context
        .as_ref()?
        .user
        .clone()?;
    let impersonated = kc
        .auth_infos
        .iter()
        .find(|a| a.name == user)
        .and_then(|a| a.auth_info.as_ref()?.impersonate.clone());
    Some(impersonated.unwrap_or(user))
}

fn api_error(what: &str, e: &kube::Error) -> PluginError {
    match k8s::error::status_code(e) {
        Some(401) => PluginError::Api(format!(
            "{what}: the API server did not accept your credentials"
        )),
        Some(403) => PluginError::Api(format!(
            "{what}: forbidden: your user lacks the RBAC permission (kubectl serin needs get and list on canaries.flagger.app and events)"
        )),
        Some(404) => PluginError::Api(format!(
            "{what}: the Canary resource is not installed (apply the CRDs first)"
        )),
        _ => PluginError::Api(format!("{what}: {}", k8s::error::describe(e))),
    }
}

async fn get(client: &kube::Client, namespace: &str, name: &str) -> Result<Canary, PluginError> {
    let api: Api<Canary> = Api::namespaced(client.clone(), namespace);
    match api.get_opt(name).await {
        Ok(Some(c)) => Ok(c),
        Ok(None) => Err(PluginError::NotFound {
            name: name.to_string(),
            namespace: namespace.to_string(),
        }),
        Err(e) => Err(api_error(
            &format!("reading canary {name} in namespace {namespace}"),
            &e,
        )),
    }
}

async fn list(
    client: &kube::Client,
    namespace: &str,
    all: bool,
) -> Result<Vec<Canary>, PluginError> {
    let (api, what): (Api<Canary>, String) = if all {
        (Api::all(client.clone()), "listing canaries".to_string())
    } else {
        (
            Api::namespaced(client.clone(), namespace),
            format!("listing canaries in namespace {namespace}"),
        )
    };
    let mut items = api
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(&what, &e))?
        .items;
    items.sort_by(|a, b| {
        (&a.metadata.namespace, &a.metadata.name).cmp(&(&b.metadata.namespace, &b.metadata.name))
    });
    Ok(items)
}

/// The Canary's events (filtered here: not every API server supports field selectors on
/// `involvedObject`).
async fn events(
    client: &kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Vec<Event>, PluginError> {
    let api: Api<Event> = Api::namespaced(client.clone(), namespace);
    let list = api
        .list(&ListParams::default())
        .await
        .map_err(|e| api_error(&format!("listing events in namespace {namespace}"), &e))?;
    Ok(list
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.kind.as_deref() == Some("Canary")
                && e.involved_object.name.as_deref() == Some(name)
        })
        .collect())
}
