//! `runledger token create|list|revoke`: API tokens, printed once and stored only as hashes;
//! over the token API of a server (`--server`, or the `serve` running on the data directory),
//! else in the database directly.

use anyhow::Context;
use clap::{Args, Subcommand};
use runledger_api::tokens::{create, find_token, list_tokens, parse_new_token, revoke_token};
use runledger_client::Client;
use runledger_core::{TenantId, UserId};
use runledger_wire::{NewTokenBody, TokenInfo};

use crate::database::Database;

/// Token management.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Creates a token and prints its secret (shown only this once).
    Create(CreateArgs),
    /// Lists every token (never a secret), newest first.
    List,
    /// Revokes a token by id.
    Revoke {
        /// The token id printed at creation.
        id: uuid::Uuid,
    },
}

/// `runledger token create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// A tenant the token acts for; repeat it for a service token of several tenants (the first
    /// is its home). An admin token acts on every tenant.
    #[arg(long = "tenant", required_unless_present = "all_tenants")]
    tenants: Vec<TenantId>,
    /// The token acts for every tenant (a product service that serves them all).
    #[arg(long)]
    all_tenants: bool,
    /// reader, writer, auditor or admin.
    #[arg(long)]
    role: String,
    /// The user the token belongs to (the notification feed is theirs).
    #[arg(long)]
    user: Option<UserId>,
    /// A label for people and logs.
    #[arg(long, default_value = "token")]
    name: String,
}

impl CreateArgs {
    fn body(self) -> NewTokenBody {
        NewTokenBody {
            name: self.name,
            role: self.role,
            tenant_ids: self.tenants.iter().map(|t| t.get()).collect(),
            all_tenants: self.all_tenants,
            user_id: self.user.map(UserId::get),
        }
    }
}

/// The token subcommands over a server's token API.
pub(crate) async fn over_http(client: &Client, command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let created = client.create_token(&args.body()).await?;
            print_created(&created.token, &created.secret);
        }
        TokenCommand::List => print_list(&client.list_tokens().await?.tokens),
        TokenCommand::Revoke { id } => {
            client.revoke_token(id).await?;
            println!("revoked {id}");
        }
    }
    Ok(())
}

/// The token subcommands on the database directly (no server runs, or `DATABASE_URL`).
pub(crate) async fn in_database(database: &Database, command: TokenCommand) -> anyhow::Result<()> {
    let pool = database.migrated_pool().await?;
    match command {
        TokenCommand::Create(args) => {
            let spec = parse_new_token(args.body()).map_err(|e| anyhow::anyhow!("{e}"))?;
            let created = create(&pool, &spec).await.context("creating the token")?;
            let token = find_token(&pool, created.id)
                .await?
                .context("the created token is not stored")?;
            print_created(&token, &created.secret);
        }
        TokenCommand::List => print_list(&list_tokens(&pool).await?),
        TokenCommand::Revoke { id } => {
            anyhow::ensure!(revoke_token(&pool, id).await?, "no live token with id {id}");
            println!("revoked {id}");
        }
    }
    Ok(())
}

fn print_created(token: &TokenInfo, secret: &str) {
    println!("token id: {}", token.id);
    println!("secret:   {secret}");
    println!("(the secret is shown only now; use it as `Authorization: Bearer <secret>`)");
}

fn print_list(tokens: &[TokenInfo]) {
    for token in tokens {
        let tenants = if token.all_tenants {
            "all".to_owned()
        } else {
            token
                .tenant_ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let used = token
            .last_used_at
            .map_or_else(|| "never used".to_owned(), |t| format!("used {t}"));
        let revoked = token
            .revoked_at
            .map_or_else(String::new, |t| format!(" revoked {t}"));
        println!(
            "{} {:<7} tenants {tenants:<8} {:<24} {used}{revoked}",
            token.id, token.role, token.name
        );
    }
}
