//! The reply parsers of `redis_node`, unit-tested on hand-built replies.

use super::*;
use crate::node::AcquireReply;

#[test]
fn script_replies_parse() {
    let arr = |a: i64, b: i64| Value::Array(vec![Value::Int(a), Value::Int(b)]);
    assert_eq!(parse_acquire(&arr(1, 0)), Ok(AcquireReply::Granted));
    assert_eq!(
        parse_acquire(&arr(0, 1500)),
        Ok(AcquireReply::Held(Some(Duration::from_millis(1500))))
    );
    assert_eq!(parse_acquire(&arr(0, -1)), Ok(AcquireReply::Held(None)));
    assert!(parse_acquire(&Value::Okay).is_err());
    assert_eq!(parse_flag(&Value::Int(1)), Ok(true));
    assert_eq!(parse_flag(&Value::Int(0)), Ok(false));
    assert!(parse_flag(&Value::Nil).is_err());
    let held = Value::Array(vec![Value::BulkString(b"tok".to_vec()), Value::Int(900)]);
    assert_eq!(
        parse_inspect(&held),
        Ok((Some("tok".into()), Some(Duration::from_millis(900))))
    );
    let free = Value::Array(vec![Value::Nil, Value::Int(-2)]);
    assert_eq!(parse_inspect(&free), Ok((None, Some(Duration::ZERO))));
}
