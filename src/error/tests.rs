//! The classification and display of `LockError` and `NodeError`, unit-tested.

use super::node::refused_command;
use super::*;

#[test]
fn a_reply_timeout_does_not_read_as_zero() {
    let message = NodeError::Timeout(Duration::ZERO).to_string();
    assert!(!message.contains("0ns"), "{message}");
    assert!(message.contains("connect timeout"), "{message}");
    assert_eq!(
        NodeError::Timeout(Duration::from_millis(100)).to_string(),
        "no answer within 100ms"
    );
}

#[test]
fn unavailable_message_names_nodes_and_advice() {
    let err = LockError::Unavailable {
        answered: 1,
        voters: 3,
        quorum: 2,
        failures: NodeFailures(vec![NodeFailure {
            node: "127.0.0.1:7001".into(),
            error: NodeError::Connect("connection refused".into()),
        }]),
    };
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:7001: cannot connect: connection refused"));
    assert!(text.contains("only 1 of 3 voters answered, 2 needed"));
    assert!(err.is_unavailable());
    assert_eq!(err.failures().len(), 1);
    assert!(!err.is_invalid_input());
}

fn unavailable_with(errors: Vec<NodeError>) -> LockError {
    LockError::Unavailable {
        answered: 0,
        voters: errors.len(),
        quorum: errors.len() / 2 + 1,
        failures: NodeFailures(
            errors
                .into_iter()
                .enumerate()
                .map(|(i, error)| NodeFailure {
                    node: format!("127.0.0.1:{}", 7000 + i),
                    error,
                })
                .collect(),
        ),
    }
}

#[test]
fn configuration_failures_become_the_error_that_says_what_to_change() {
    let perm = NodeError::Permission {
        command: "EVALSHA".into(),
        detail: "NOPERM".into(),
    };
    let auth = NodeError::Auth("WRONGPASS".into());
    let err = unavailable_with(vec![perm.clone(), auth]).explained(|_| None);
    assert!(
        matches!(&err, LockError::Auth { node, .. } if node == "127.0.0.1:7001"),
        "{err}"
    );
    assert!(!err.is_retryable());
    let err = unavailable_with(vec![perm.clone(), perm.clone()]).explained(|_| None);
    assert!(err.to_string().contains("+evalsha"), "{err}");
    let err = unavailable_with(vec![NodeError::WrongType("WRONGTYPE".into())])
        .explained(|node| Some(format!("key on {node}")));
    assert!(
        matches!(&err, LockError::WrongType { key, .. } if key == "key on 127.0.0.1:7000"),
        "{err}"
    );
    // With one node merely down, a retry may still succeed: stay Unavailable.
    let err = unavailable_with(vec![perm, NodeError::Timeout(Duration::from_millis(1))])
        .explained(|_| None);
    assert!(err.is_unavailable() && err.is_retryable(), "{err}");
}

#[test]
fn noperm_names_the_refused_command() {
    assert_eq!(
        refused_command("this user has no permissions to run the 'evalsha' command"),
        "EVALSHA"
    );
    assert_eq!(
        refused_command("this user has no permissions to access one of the keys"),
        "a command"
    );
}
