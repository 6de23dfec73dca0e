//! kubus's own functions in a plan that another process runs (a Ballista cluster's scheduler and executors): each
//! as bytes that carry what it computes with — a level's member positions, a perturbation table — and back. A
//! plan's built-in functions travel by name; these are made per query, so their state travels with them.

use crate::bitmap::{BitmapUdf, CellUdf, Mode};
use crate::cellkey::{PTable, RecordKeyUdf};
use crate::members::{IsMemberUdf, MemberKeyUdf, MemberOrdUdf};
use crate::published::{Input, Keys, Output, Published};
use datafusion::common::{DataFusionError, Result};
use datafusion::logical_expr::{AggregateUDF, ScalarUDF};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// A function of kubus and what it computes with.
#[derive(Serialize, Deserialize)]
enum Function {
    IsMember,
    MemberOrd { entries: Vec<(String, i32)> },
    MemberKey { keys: Vec<String> },
    BitmapCell,
    RecordKey,
    Bitmap,
    BitmapCount,
    BitmapUnion,
    BitmapPublished { ptable: PTable },
    Published { ptable: PTable, percent: u32, input: Input, keys: Keys, output: Output },
}

fn encode(function: &Function) -> Result<Vec<u8>> {
    serde_json::to_vec(function).map_err(|e| DataFusionError::Internal(format!("kubus function not encoded: {e}")))
}

fn decode(name: &str, bytes: &[u8]) -> Result<Function> {
    if bytes.is_empty() {
        return Err(DataFusionError::Plan(format!("no function {name} is known here")));
    }
    serde_json::from_slice(bytes)
        .map_err(|e| DataFusionError::Internal(format!("kubus function {name} not decoded: {e}")))
}

/// The bytes of a scalar function of kubus, `None` for another one (DataFusion's own travel by name).
pub fn encode_scalar(udf: &ScalarUDF) -> Result<Option<Vec<u8>>> {
    let inner = udf.inner();
    let function = if inner.is::<IsMemberUdf>() {
        Function::IsMember
    } else if let Some(f) = inner.downcast_ref::<MemberOrdUdf>() {
        Function::MemberOrd { entries: f.entries().to_vec() }
    } else if let Some(f) = inner.downcast_ref::<MemberKeyUdf>() {
        Function::MemberKey { keys: f.keys().to_vec() }
    } else if inner.is::<CellUdf>() {
        Function::BitmapCell
    } else if inner.is::<RecordKeyUdf>() {
        Function::RecordKey
    } else {
        return Ok(None);
    };
    encode(&function).map(Some)
}

/// The scalar function of kubus that [`encode_scalar`] gave `bytes` for.
pub fn decode_scalar(name: &str, bytes: &[u8]) -> Result<Arc<ScalarUDF>> {
    let udf = match decode(name, bytes)? {
        Function::IsMember => crate::members::is_member_udf(),
        Function::MemberOrd { entries } => crate::members::member_ord_udf(entries),
        Function::MemberKey { keys } => crate::members::member_key_udf(keys),
        Function::BitmapCell => crate::bitmap::cell_udf(),
        Function::RecordKey => crate::cellkey::record_key_udf(),
        _ => return Err(DataFusionError::Internal(format!("{name} is an aggregate function, not a scalar one"))),
    };
    Ok(Arc::new(udf))
}

/// The bytes of an aggregate function of kubus, `None` for another one.
pub fn encode_aggregate(udaf: &AggregateUDF) -> Result<Option<Vec<u8>>> {
    let inner = udaf.inner();
    let function = if let Some(f) = inner.downcast_ref::<BitmapUdf>() {
        match f.mode() {
            Mode::Build => Function::Bitmap,
            Mode::Count => Function::BitmapCount,
            Mode::Union => Function::BitmapUnion,
            Mode::Published(ptable) => Function::BitmapPublished { ptable: ptable.as_ref().clone() },
        }
    } else if let Some(f) = inner.downcast_ref::<Published>() {
        let (ptable, percent, input, keys, output) = f.parts();
        Function::Published { ptable: ptable.as_ref().clone(), percent, input, keys, output }
    } else {
        return Ok(None);
    };
    encode(&function).map(Some)
}

/// The aggregate function of kubus that [`encode_aggregate`] gave `bytes` for.
pub fn decode_aggregate(name: &str, bytes: &[u8]) -> Result<Arc<AggregateUDF>> {
    let udaf = match decode(name, bytes)? {
        Function::Bitmap => crate::bitmap::bitmap_udaf(Mode::Build),
        Function::BitmapCount => crate::bitmap::bitmap_udaf(Mode::Count),
        Function::BitmapUnion => crate::bitmap::bitmap_udaf(Mode::Union),
        Function::BitmapPublished { ptable } => crate::bitmap::bitmap_udaf(Mode::Published(Arc::new(ptable))),
        Function::Published { ptable, percent, input, keys, output } => {
            crate::published::udaf(Arc::new(ptable), percent, input, keys, output)
        }
        _ => return Err(DataFusionError::Internal(format!("{name} is a scalar function, not an aggregate one"))),
    };
    Ok(Arc::new(udaf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::logical_expr::Expr;
    use datafusion::prelude::{col, lit};

    fn scalar(expr: &Expr) -> &ScalarUDF {
        match expr {
            Expr::ScalarFunction(f) => &f.func,
            other => panic!("not a scalar function: {other}"),
        }
    }

    fn aggregate(expr: &Expr) -> &AggregateUDF {
        match expr {
            Expr::AggregateFunction(f) => &f.func,
            other => panic!("not an aggregate function: {other}"),
        }
    }

    fn ptable() -> Arc<PTable> {
        let params = crate::cellkey::PTableParams { max_noise: 2, variance: 1.0, small: 2, keys: 256 };
        Arc::new(PTable::generate(&params).unwrap())
    }

    /// Every function comes back equal to itself (equality is each function's identity: what it computes with).
    #[test]
    fn every_function_comes_back_as_itself() {
        let model = crate::plan::tests::model();
        let dim = model.dimension("district").unwrap();
        let scalars = [
            crate::members::is_member(col("a"), vec![lit("x")]),
            crate::members::member_ord(dim, 2, 1, 0, col("a")),
            crate::members::member_ord(dim, 2, 0, 3, col("a")),
            crate::members::member_key(dim, 1, col("a")),
            crate::bitmap::cell_count_and_key(col("a")),
            crate::cellkey::record_key_of(col("a")),
        ];
        for expr in &scalars {
            let udf = scalar(expr);
            let bytes = encode_scalar(udf).unwrap().expect("a function of kubus");
            assert_eq!(decode_scalar(udf.name(), &bytes).unwrap().as_ref(), udf, "{}", udf.name());
        }
        let noise = crate::cellkey::Noise { ptable: ptable(), unit: "p".into(), magnitude: 10 };
        let aggregates = [
            crate::bitmap::build(col("a")),
            crate::bitmap::count(col("a")),
            crate::bitmap::union(col("a")),
            crate::bitmap::published_count(&noise.ptable, col("a")),
            crate::published::aggregate(&noise, Input::Values, Keys::Stored, Output::Sum, vec![col("a"), col("b")]),
            crate::published::aggregate(&noise, Input::Units, Keys::Hashed, Output::Count, vec![col("a")]),
        ];
        for expr in &aggregates {
            let udaf = aggregate(expr);
            let bytes = encode_aggregate(udaf).unwrap().expect("a function of kubus");
            assert_eq!(decode_aggregate(udaf.name(), &bytes).unwrap().as_ref(), udaf, "{}", udaf.name());
        }
    }

    #[test]
    fn datafusion_functions_travel_by_name() {
        let expr = datafusion::functions::expr_fn::upper(col("a"));
        assert!(encode_scalar(scalar(&expr)).unwrap().is_none());
        let expr = datafusion::functions_aggregate::expr_fn::sum(col("a"));
        assert!(encode_aggregate(aggregate(&expr)).unwrap().is_none());
        assert!(decode_scalar("kubus_is_member", b"not json").is_err());
    }
}
