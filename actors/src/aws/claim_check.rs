//! Reading the item a claim check names: what a consumer of an event that went by reference
//! does to get its row (see [`eda_core::claim_check`]). `eda-daemon claim-check` and the tests
//! use it; the decision of what the item holds is the core's ([`claimed_row`]).

use super::dynamodb::{from_sdk, to_sdk};
use super::error::sink_error;
use crate::ports::SinkError;
use eda_core::apply_plan::{typed, AttrValue};
use eda_core::claim_check::{claimed_row, ClaimCheck, Claimed};
use eda_core::failure::ErrorClass;
use eda_core::stream_record::Image;

/// Reads the claim check's item (a consistent `GetItem` in the region `dynamodb` is a client
/// of) and says what it holds: the change's row, another change, or nothing.
pub async fn read_claimed_row(
    dynamodb: &aws_sdk_dynamodb::Client,
    claim: &ClaimCheck,
) -> Result<Claimed, SinkError> {
    let key = claim
        .item_key
        .iter()
        .map(|(name, value)| (name.clone(), to_sdk(&AttrValue::from_json(value))))
        .collect();
    let found = dynamodb
        .get_item()
        .table_name(&claim.dynamodb_table)
        .set_key(Some(key))
        .consistent_read(true)
        .send()
        .await
        .map_err(|err| sink_error("dynamodb", "GetItem", &err))?;
    let item: Option<Image> = found.item.map(|item| {
        item.iter()
            .map(|(name, value)| (name.clone(), typed(&from_sdk(value))))
            .collect()
    });
    claimed_row(item.as_ref(), claim).map_err(|err| SinkError {
        service: "dynamodb",
        operation: "GetItem",
        class: ErrorClass::Validation,
        message: format!("the item of the claim check cannot be read as a row: {err}"),
    })
}
