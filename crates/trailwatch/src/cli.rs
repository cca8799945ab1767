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
