//! `users …`, `senders …`, `contacts …` and `inboxes`: tokens, availability (F7),
//! blocked senders (C2), contact records (F8) and inbox addresses (A2).

use super::output::outln;
use std::process::ExitCode;

use clap::Subcommand;
use serde_json::json;

use super::service::{caller, open, open_creating, print_json, run_async};
use crate::config::Config;
use crate::inbox::{json, Caller};

#[derive(Subcommand, Debug)]
pub enum UsersCommand {
    /// API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Web inbox passwords.
    #[command(subcommand)]
    Password(PasswordCommand),
    /// Show or set a user's availability (F7): `availability EMAIL [available|away]`,
    /// or `availability [available|away] --as EMAIL`.
    Availability {
        /// The user's email (optional with `--as`), then `available` or `away`; omit the
        /// state to show.
        #[arg(num_args = 0..=2)]
        args: Vec<String>,
        #[arg(long = "as")]
        as_user: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Create a token for a configured user; it is printed once and stored only hashed.
    Create { email: String },
    /// List tokens (id, user, created, last used; never the secret), or one user's.
    List {
        email: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id: the API refuses it at once.
    Revoke { id: i64 },
}

#[derive(Subcommand, Debug)]
pub enum PasswordCommand {
    /// Set a configured user's web inbox password, read from standard input (one
    /// line); stored as an Argon2id hash. Their open sessions end.
    Set { email: String },
}

#[derive(Subcommand, Debug)]
pub enum SendersCommand {
    /// Block a sender: their future threads go to Filtered.
    Block {
        address: String,
        #[arg(long = "as", required = true)]
        as_user: String,
    },
    /// Unblock a sender: their future threads come through again.
    Unblock {
        address: String,
        #[arg(long = "as", required = true)]
        as_user: String,
    },
    /// List blocked senders (JSON).
    List {
        #[arg(long = "as")]
        as_user: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ContactsCommand {
    /// A contact (by email or id) with their conversations and tickets (JSON).
    Show {
        key: String,
        #[arg(long = "as")]
        as_user: Option<String>,
    },
    /// Give a contact an owner (D3): conversations routed to `contact_owner` go to them.
    /// USER is a configured user's email, or `none` to clear.
    Owner {
        email: String,
        user: String,
        #[arg(long = "as")]
        as_user: Option<String>,
    },
}

pub fn run_users(config: &Config, command: UsersCommand) -> anyhow::Result<ExitCode> {
    let service = match command {
        UsersCommand::Password(_) | UsersCommand::Token(TokenCommand::Create { .. }) => {
            open_creating(config)?
        }
        _ => open(config)?,
    };
    match command {
        UsersCommand::Token(TokenCommand::Create { email }) => {
            let token = run_async(service.create_token(&email))??;
            outln!("{token}");
        }
        UsersCommand::Password(PasswordCommand::Set { email }) => {
            let password = read_password_line()?;
            run_async(service.set_password(&email, &password))??;
            outln!("{email}: password set");
        }
        UsersCommand::Token(TokenCommand::List { email, json }) => {
            let tokens = service.tokens(&Caller::Operator, email.as_deref())?;
            print_tokens(&tokens, json)?;
        }
        UsersCommand::Token(TokenCommand::Revoke { id }) => {
            run_async(service.revoke_token(&Caller::Operator, id))??;
            outln!("token {id}: revoked");
        }
        UsersCommand::Availability { args, as_user } => {
            let (email, state) = availability_args(args, as_user)?;
            let caller = Caller::User(email);
            if let Some(state) = state {
                let available = match state.as_str() {
                    "available" => true,
                    "away" => false,
                    other => anyhow::bail!("availability: {other:?} is neither available nor away"),
                };
                run_async(service.set_availability(&caller, available))??;
            }
            let (user, available) = service.me(&caller)?;
            print_json(&json!({ "email": user.email, "name": user.name, "available": available }))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The new password: the first line of standard input, without its line ending.
fn read_password_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| anyhow::anyhow!("password: cannot read standard input: {e}"))?;
    let password = line.trim_end_matches(['\r', '\n']).to_string();
    if password.is_empty() {
        anyhow::bail!("password: standard input gave no password (one line expected)");
    }
    Ok(password)
}

/// `users token list`: a table, or JSON with `--json`.
fn print_tokens(tokens: &[crate::store::TokenRow], as_json: bool) -> anyhow::Result<()> {
    if as_json {
        return print_json(&serde_json::Value::Array(
            tokens.iter().map(json::token).collect(),
        ));
    }
    outln!("{:<6} {:<32} {:<20} LAST USED", "ID", "USER", "CREATED");
    for t in tokens {
        let last = t.last_used_at.map(json::rfc3339);
        outln!(
            "{:<6} {:<32} {:<20} {}",
            t.id,
            t.user,
            json::rfc3339(t.created_at),
            last.as_deref().unwrap_or("never")
        );
    }
    Ok(())
}

/// `[EMAIL] [STATE]` with or without `--as`: the user is the email argument, else `--as`.
fn availability_args(
    mut args: Vec<String>,
    as_user: Option<String>,
) -> anyhow::Result<(String, Option<String>)> {
    let email = match args.first() {
        Some(first) if first.contains('@') => args.remove(0),
        _ => as_user.ok_or_else(|| {
            anyhow::anyhow!(
                "availability: name the user: `users availability EMAIL [available|away]`"
            )
        })?,
    };
    if args.len() > 1 {
        anyhow::bail!("availability: unexpected argument {:?}", args[1]);
    }
    Ok((email, args.pop()))
}

pub fn run_senders(config: &Config, command: SendersCommand) -> anyhow::Result<ExitCode> {
    let service = open(config)?;
    match command {
        SendersCommand::Block { address, as_user } => {
            run_async(service.set_sender_blocked(&Caller::User(as_user), &address, true))??;
            outln!("{address}: blocked");
        }
        SendersCommand::Unblock { address, as_user } => {
            run_async(service.set_sender_blocked(&Caller::User(as_user), &address, false))??;
            outln!("{address}: unblocked");
        }
        SendersCommand::List { as_user } => {
            let list = service.blocked_senders(&caller(as_user))?;
            let list: Vec<_> = list
                .iter()
                .map(|(address, at, by)| {
                    json!({ "address": address, "blocked_at": json::rfc3339(*at), "blocked_by": by })
                })
                .collect();
            print_json(&serde_json::Value::Array(list))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run_contacts(config: &Config, command: ContactsCommand) -> anyhow::Result<ExitCode> {
    let service = open(config)?;
    match command {
        ContactsCommand::Show { key, as_user } => {
            let (contact, conversations) = service.contact(&caller(as_user), &key)?;
            print_json(&json::contact(&contact, &conversations))?;
        }
        ContactsCommand::Owner {
            email,
            user,
            as_user,
        } => {
            let owner = (user != "none").then_some(user);
            run_async(service.set_contact_owner(&caller(as_user), &email, owner.as_deref()))??;
            outln!("{email}: owner {}", owner.as_deref().unwrap_or("none"));
        }
    }
    Ok(ExitCode::SUCCESS)
}
