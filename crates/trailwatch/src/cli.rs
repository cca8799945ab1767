//! Command-line arguments.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "trailwatch",
    version,
    about = "Self-hosted audit trail and alarms, compatible with CTS, FunctionGraph and SMN"
)]
pub struct Cli {
    #[command(flatten)]
    pub connection: ConnectionArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Where the server is and who we are. Flags win over environment variables, which win over
/// the profile file.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Server URL [env: TRAILWATCH_ENDPOINT] [default: http://127.0.0.1:8840]
    #[arg(long, global = true)]
    pub endpoint: Option<String>,
    /// Project name or id [env: TRAILWATCH_PROJECT] [default: default]
    #[arg(long, global = true)]
    pub project: Option<String>,
    /// Domain (account) of the user for password logins [env: TRAILWATCH_DOMAIN] [default: default]
    #[arg(long, global = true)]
    pub domain: Option<String>,
    /// Profile file with endpoint, project, domain, access_key/secret_key or user/password
    /// [env: TRAILWATCH_PROFILE] [default: ~/.config/trailwatch/profile.toml]
    #[arg(long, global = true)]
    pub profile: Option<PathBuf>,
    /// PEM file of a CA certificate (or a server's self-signed certificate) to trust for an
    /// https:// endpoint, besides the system's roots [env: TRAILWATCH_CA_CERT]
    #[arg(long, global = true)]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Record and query traces.
    #[command(subcommand)]
    Traces(Box<TracesCommand>),
    /// Users and AK/SK credentials.
    #[command(subcommand)]
    Iam(IamCommand),
    /// Check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Notification topics (SMN).
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Subscriptions of topics: email, sms, http, https.
    #[command(subcommand)]
    Subscriptions(SubscriptionsCommand),
    /// Publish a message to a topic.
    Publish {
        /// Topic name or URN.
        topic: String,
        /// The message text.
        message: String,
        #[arg(long)]
        subject: Option<String>,
        /// Seconds the message may wait for delivery before it becomes a dead letter (default 3600).
        #[arg(long)]
        ttl: Option<u32>,
    },
    /// Delivery attempts of a published message.
    #[command(subcommand)]
    Deliveries(DeliveriesCommand),
    /// Dead letters: deliveries that failed for good.
    #[command(subcommand)]
    Notifications(NotificationsCommand),
    /// Silences: time-bounded mutes of a topic's messages (they are recorded, not delivered).
    #[command(subcommand)]
    Silences(SilencesCommand),
    /// Functions (FunctionGraph): create, list, invoke, logs, statistics.
    #[command(subcommand)]
    Functions(Box<FunctionsCommand>),
    /// Triggers of a function: CTS, TIMER, LTS.
    #[command(subcommand)]
    Triggers(Box<TriggersCommand>),
    /// Agencies: what a function may do (IAM roles granted in the current project).
    #[command(subcommand)]
    Agencies(AgenciesCommand),
    /// Check an archive offline (no server needed): every trace file's hash, every digest's
    /// signature and the chain. Exit status 0 valid, 1 problems found, 2 could not run.
    Verify(VerifyArgs),
    /// The archive's signing key.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Import traces from elsewhere into the trace log.
    #[command(subcommand)]
    Import(ImportCommand),
    /// Follow log files (and journald) as they grow and send their records as traces, with
    /// durable checkpoints and a disk spool while the server is unreachable.
    Collect(Box<CollectArgs>),
}

#[derive(Debug, Args)]
pub struct CollectArgs {
    /// A file of `[[source]]` blocks (as in the server configuration, without `project_id`).
    #[arg(long, conflicts_with_all = ["kind", "path", "name", "host"])]
    pub config: Option<PathBuf>,
    /// Where checkpoints and spooled batches are kept.
    #[arg(long)]
    pub state_dir: PathBuf,
    /// One source from flags: sshd, journald, cloudtrail, windows-security or k8s-audit.
    #[arg(long, required_unless_present = "config")]
    pub kind: Option<String>,
    /// The file to follow (all kinds but journald).
    #[arg(long)]
    pub path: Option<PathBuf>,
    /// The source's name (keys its checkpoint).
    #[arg(long, default_value = "default")]
    pub name: String,
    /// sshd: the host name for lines that carry none.
    #[arg(long)]
    pub host: Option<String>,
    /// Without a checkpoint, start at the end (only new records) instead of the beginning.
    #[arg(long)]
    pub start_at_end: bool,
    /// journald: a unit to follow (repeatable), e.g. ssh.
    #[arg(long)]
    pub unit: Vec<String>,
    /// journald: a field match (repeatable), e.g. _COMM=sshd.
    #[arg(long = "match")]
    pub matches: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// Read CTS trace files (trailwatch's own archive or real CTS transfers) back into the trace
    /// log; traces already stored (same trace_id) are counted as duplicates, not stored twice.
    CtsArchive(ImportArchiveArgs),
    /// OpenSSH syslog files (auth.log, secure; RFC 3164 or RFC 5424): logins, failed logins and
    /// logouts become traces (`docs/specs/sources.md`).
    Sshd(ImportFilesArgs),
    /// `journalctl -o json` output of sshd.
    Journald(ImportFilesArgs),
    /// AWS CloudTrail files (`{"Records":[…]}`) or JSON Lines.
    Cloudtrail(ImportFilesArgs),
    /// Windows Security logon/logoff events as JSON (winlogbeat, EVTX-to-JSON) or an XML export
    /// (files ending in `.xml`).
    WindowsSecurity(ImportFilesArgs),
    /// Kubernetes audit events (JSON Lines).
    K8sAudit(ImportFilesArgs),
    /// Windows Security events from binary .evtx files (mapped as windows-security).
    Evtx(ImportFilesArgs),
    /// Any JSON Lines login log (Keycloak, Okta, …) with a field mapping.
    Json(ImportJsonArgs),
}

#[derive(Debug, Args)]
pub struct ImportJsonArgs {
    #[command(flatten)]
    pub files: ImportFilesArgs,
    /// A TOML file with the mapping (the fields of "Generic JSON" in docs/specs/sources.md).
    #[arg(long, conflicts_with = "preset", required_unless_present = "preset")]
    pub mapping: Option<PathBuf>,
    /// A built-in mapping instead of a file: keycloak or okta.
    #[arg(long, value_parser = ["keycloak", "okta"])]
    pub preset: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportFilesArgs {
    /// The files to read.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Print the traces (JSON Lines) instead of sending them.
    #[arg(long)]
    pub dry_run: bool,
    /// The host name for syslog lines that carry none.
    #[arg(long)]
    pub host: Option<String>,
    /// The time RFC 3164 lines (which have no year) are read relative to: RFC 3339 or epoch
    /// milliseconds (default now). A line's year is the latest that puts it at or before this
    /// time (plus one day).
    #[arg(long)]
    pub reference_time: Option<String>,
}

#[derive(Debug, Args)]
pub struct ImportArchiveArgs {
    /// The bucket root that holds `CloudTraces/`: a folder, or `s3://BUCKET` (with `--config`).
    pub store: String,
    /// Configuration file with an `[objects]` section (for `s3://`).
    #[arg(long)]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The bucket root that holds `CloudTraces/`: a folder, or `s3://BUCKET` (the S3 endpoint and
    /// credentials come from the `[objects]` section of `--config`).
    #[arg(long)]
    pub store: String,
    /// The public key (PEM) from `trailwatch keys export` or `GET /v3/{project_id}/tracker/public-key`.
    #[arg(long)]
    pub public_key: PathBuf,
    /// Check files from this time on: RFC 3339 (2026-11-25T10:00:00Z) or epoch milliseconds.
    #[arg(long)]
    pub from: Option<String>,
    /// Check files up to this time (default now); digests missing before it are reported.
    #[arg(long)]
    pub to: Option<String>,
    /// Configuration file with an `[objects]` section (for `s3://`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Print the archive's public key (PEM), read from the data directory; no server needed.
    Export {
        /// The server's data directory.
        #[arg(long, default_value = "./trailwatch-data")]
        data_dir: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum FunctionsCommand {
    /// Create a built-in function; prints its URN.
    Create(FunctionCreateArgs),
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Invoke a function with an event and print its result (exit status 1 when it failed).
    Invoke {
        /// Function name, `package:name` or URN.
        function: String,
        /// The event, as JSON (default `{}`).
        #[arg(long, conflicts_with = "event_file")]
        event: Option<String>,
        /// A file holding the event (`-` for standard input).
        #[arg(long)]
        event_file: Option<PathBuf>,
        /// Queue the invocation and print its request id instead of waiting.
        #[arg(long = "async", conflicts_with = "log")]
        run_async: bool,
        /// Also print the invocation's log (its last 4 KB).
        #[arg(long)]
        log: bool,
    },
    /// The function's recent invocations, newest first.
    Logs {
        function: String,
        /// How many (1–500).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u16).range(1..=500))]
        limit: u16,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Totals of the last minutes: invocations, failures, throttles, durations.
    Stats {
        function: String,
        #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=43_200))]
        minutes: u32,
    },
    /// Delete a function and its triggers.
    Delete { function: String },
}

#[derive(Debug, Args)]
pub struct FunctionCreateArgs {
    /// 1–60 letters, digits, `_` or `-`, starting with a letter.
    pub name: String,
    /// The built-in function: login_audit or log_alarm.
    #[arg(long)]
    pub handler: String,
    #[arg(long, default_value = "default")]
    pub package: String,
    #[arg(long, default_value = "builtin")]
    pub runtime: String,
    /// Memory in MB (128, 256, 512, … 4096).
    #[arg(long, default_value_t = 128)]
    pub memory: u32,
    /// Timeout in seconds (3–900).
    #[arg(long, default_value_t = 30)]
    pub timeout: u32,
    /// An environment variable, KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// An encrypted environment variable, KEY=VALUE (repeatable; never shown again).
    #[arg(long, value_name = "KEY=VALUE")]
    pub encrypted_env: Vec<String>,
    /// The agency the function acts as.
    #[arg(long)]
    pub agency: Option<String>,
    #[arg(long, default_value = "")]
    pub description: String,
    /// Concurrency limit (1–1000).
    #[arg(long)]
    pub max_instances: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum TriggersCommand {
    /// Create a trigger; prints its id.
    Create(TriggerCreateArgs),
    List {
        /// Function name, `package:name` or URN.
        function: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    Delete {
        function: String,
        /// CTS, TIMER or LTS.
        #[arg(value_name = "TYPE")]
        trigger_type: String,
        trigger_id: String,
    },
}

#[derive(Debug, Args)]
pub struct TriggerCreateArgs {
    /// Function name, `package:name` or URN.
    pub function: String,
    /// CTS, TIMER or LTS.
    #[arg(long = "type", value_name = "TYPE")]
    pub trigger_type: String,
    /// The trigger's name (default: the function's name).
    #[arg(long)]
    pub name: Option<String>,
    /// CTS: SERVICE:resType1;resType2:op1;op2, e.g. 'IAM:user:login;logout' (repeatable).
    #[arg(long)]
    pub operations: Vec<String>,
    /// TIMER: Rate or Cron.
    #[arg(long, default_value = "Rate")]
    pub schedule_type: String,
    /// TIMER: 5m, 2h, 1d (Rate) or a cron expression.
    #[arg(long)]
    pub schedule: Option<String>,
    /// TIMER: text handed to the function with each tick.
    #[arg(long)]
    pub user_event: Option<String>,
    /// LTS: the log group id.
    #[arg(long)]
    pub log_group: Option<String>,
    /// LTS: the log stream id.
    #[arg(long)]
    pub log_stream: Option<String>,
    /// Create it disabled.
    #[arg(long)]
    pub disabled: bool,
}

#[derive(Debug, Subcommand)]
pub enum AgenciesCommand {
    /// Create an agency trusting the function service and grant it roles in the current project.
    Create {
        name: String,
        /// A role to grant, by display name ('SMN Administrator') or name (smn_adm); repeatable.
        #[arg(long)]
        role: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// The agencies of your domain, with the roles granted in the current project.
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum SilencesCommand {
    /// Mute a topic's messages matching the given texts until a time; prints the silence id.
    Create {
        /// Topic name or URN.
        topic: String,
        /// How long from now, e.g. 30m, 2h, 7d (at most 30 days).
        #[arg(long, conflicts_with = "ends_at", required_unless_present = "ends_at")]
        ends_in: Option<String>,
        /// When it ends: milliseconds or RFC 3339 (2026-11-25T10:00:00Z).
        #[arg(long)]
        ends_at: Option<String>,
        /// When it starts (default now), same forms as --ends-at.
        #[arg(long)]
        starts_at: Option<String>,
        /// Mute messages whose subject contains this text (case-sensitive).
        #[arg(long)]
        subject_contains: Option<String>,
        /// Mute messages whose text contains this (case-sensitive).
        #[arg(long)]
        message_contains: Option<String>,
        /// Why, for whoever looks later.
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// The project's silences, newest first, with whether each is active.
    List {
        /// Only this topic's silences.
        #[arg(long)]
        topic: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// End a silence now.
    Expire { silence_id: String },
}

#[derive(Debug, Subcommand)]
pub enum TopicsCommand {
    /// Create a topic (an existing one of that name is returned).
    Create {
        name: String,
        /// Sender name of emails.
        #[arg(long, default_value = "")]
        display_name: String,
    },
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Delete a topic and its subscriptions.
    Delete { topic: String },
    /// Show or set the topic's alarm hygiene (dedup window).
    Hygiene {
        /// Topic name or URN.
        topic: String,
        /// Deliver identical messages (same subject and text) once per this many seconds and
        /// send one summary with the count when the window closes; 0 turns it off (max 86400).
        #[arg(long, value_name = "SECONDS")]
        dedup_window: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SubscriptionsCommand {
    /// Subscribe an endpoint; email and http(s) endpoints get a confirmation first.
    Add {
        /// Topic name or URN.
        topic: String,
        /// email, sms, http, https or functionstage.
        protocol: String,
        /// Address, E.164 phone number, URL or function URN. (Not `endpoint`: that id is the
        /// global server flag.)
        #[arg(value_name = "ENDPOINT")]
        address: String,
        #[arg(long, default_value = "")]
        remark: String,
        /// An `x-…` header added to HTTP(S) deliveries, as NAME=VALUE (repeatable).
        #[arg(long)]
        header: Vec<String>,
    },
    List {
        /// Only this topic's subscriptions.
        #[arg(long)]
        topic: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Open a confirmation link (as received by email or SMS).
    Confirm {
        url: String,
    },
    Delete {
        subscription_urn: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeliveriesCommand {
    /// Each subscriber's delivery of a message, with every attempt.
    List {
        #[arg(long)]
        message_id: String,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum NotificationsCommand {
    #[command(subcommand)]
    DeadLetters(DeadLettersCommand),
}

#[derive(Debug, Subcommand)]
pub enum DeadLettersCommand {
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
    /// Queue dead letters again (all, or the given delivery ids).
    Replay { delivery_ids: Vec<i64> },
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Configuration file (TOML). Without one, the embedded defaults apply.
    #[arg(long, env = "TRAILWATCH_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8840]
    #[arg(long)]
    pub listen: Option<String>,
    /// Data directory [default: ./trailwatch-data]
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// PEM certificate chain for HTTPS (with --tls-key; overrides [server] tls_cert)
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for HTTPS (with --tls-cert; overrides [server] tls_key)
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback address ([server] allow_plain_http)
    #[arg(long)]
    pub allow_plain_http: bool,
}

#[derive(Debug, Subcommand)]
pub enum TracesCommand {
    /// Send traces from a JSON or JSON Lines file (`-` for standard input).
    Put(PutArgs),
    /// List traces, newest first.
    List(Box<ListArgs>),
}

#[derive(Debug, Args)]
pub struct PutArgs {
    /// A file holding one trace, an array of traces, `{"traces":[…]}`, or one trace per line.
    pub file: PathBuf,
    /// Traces per request (1–1000).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u16).range(1..=1000))]
    pub batch_size: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Earliest time: milliseconds, RFC 3339, or an age such as 30m, 12h, 7d.
    #[arg(long)]
    pub from: Option<String>,
    /// Latest time, same forms as --from.
    #[arg(long)]
    pub to: Option<String>,
    /// Traces per page (1–200).
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u16).range(1..=200))]
    pub limit: u16,
    /// Follow the markers and print every matching trace.
    #[arg(long)]
    pub all: bool,
    /// Continue from this marker (the last trace_id of a previous page).
    #[arg(long)]
    pub next: Option<String>,
    /// `system` (management traces, default) or `data`.
    #[arg(long)]
    pub trace_type: Option<String>,
    #[arg(long)]
    pub tracker_name: Option<String>,
    #[arg(long)]
    pub service_type: Option<String>,
    /// User name.
    #[arg(long)]
    pub user: Option<String>,
    #[arg(long)]
    pub resource_id: Option<String>,
    #[arg(long)]
    pub resource_name: Option<String>,
    #[arg(long)]
    pub resource_type: Option<String>,
    #[arg(long)]
    pub trace_id: Option<String>,
    #[arg(long)]
    pub trace_name: Option<String>,
    /// normal, warning or incident.
    #[arg(long)]
    pub trace_rating: Option<String>,
    /// An address or CIDR range.
    #[arg(long)]
    pub source_ip: Option<String>,
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
}

#[derive(Debug, Subcommand)]
pub enum IamCommand {
    #[command(subcommand)]
    Users(UsersCommand),
    #[command(subcommand)]
    Credentials(CredentialsCommand),
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user in your domain (administrators).
    Create {
        name: String,
        /// The new user's password [env: TRAILWATCH_NEW_PASSWORD]; read from standard input when absent.
        #[arg(long, env = "TRAILWATCH_NEW_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Make the user a domain administrator.
        #[arg(long)]
        admin: bool,
    },
    /// List the users of your domain (administrators).
    List {
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum CredentialsCommand {
    /// Create an AK/SK; the secret key is printed once.
    Create {
        /// For another user of your domain (administrators).
        #[arg(long)]
        user_id: Option<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List AK/SK credentials (secret keys are never shown again).
    List {
        #[arg(long)]
        user_id: Option<String>,
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file and report every problem at once.
    Check { file: PathBuf },
}
