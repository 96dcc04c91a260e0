//! `runledger token create|revoke`: API tokens, printed once and stored only as hashes.

use anyhow::Context;
use clap::{Args, Subcommand};
use runledger_api::auth::Role;
use runledger_api::tokens::{NewToken, create_token, revoke_token};
use runledger_core::{TenantId, UserId};

use crate::database::Database;

/// Token management.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Creates a token and prints its secret (shown only this once).
    Create(CreateArgs),
    /// Revokes a token by id.
    Revoke {
        /// The token id printed at creation.
        id: uuid::Uuid,
    },
}

/// `runledger token create`.
#[derive(Debug, Args)]
pub(crate) struct CreateArgs {
    /// The tenant the token acts for (an admin token may act on any tenant).
    #[arg(long)]
    tenant: TenantId,
    /// reader, writer, auditor or admin.
    #[arg(long, value_parser = Role::parse)]
    role: Role,
    /// The user the token belongs to (the notification feed is theirs).
    #[arg(long)]
    user: Option<UserId>,
    /// A label for people and logs.
    #[arg(long, default_value = "token")]
    name: String,
}

pub(crate) async fn run(database: &Database, command: TokenCommand) -> anyhow::Result<()> {
    let pool = database.migrated_pool().await?;
    match command {
        TokenCommand::Create(args) => {
            let token = NewToken {
                tenant_id: args.tenant,
                role: args.role,
                user_id: args.user,
                name: args.name,
            };
            let created = create_token(&pool, &token)
                .await
                .context("creating the token")?;
            println!("token id: {}", created.id);
            println!("secret:   {}", created.secret);
            println!("(the secret is shown only now; use it as `Authorization: Bearer <secret>`)");
        }
        TokenCommand::Revoke { id } => {
            anyhow::ensure!(revoke_token(&pool, id).await?, "no live token with id {id}");
            println!("revoked {id}");
        }
    }
    Ok(())
}
