//! One snapshot time of a backtest: the accounts scored then, how many churned within the
//! horizon, the AUC and the churn per band, in one aggregate state. The plain SQL way (a
//! grouping-sets pass hashing every row twice, then an AUC per time) was most of
//! `backtest`'s cost.

use super::auc::AucState;
use super::bytes::Reader;
use super::error::Error;
use super::json::Json;

/// The accounts and churns of one band (a band name at its rank in the bands list applied).
#[derive(Debug, Clone, PartialEq)]
pub struct BandCount {
    pub rank: i32,
    pub name: String,
    pub accounts: u64,
    pub churned: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct BacktestState {
    pub accounts: u64,
    pub churned: u64,
    pub auc: AucState,
    /// Few (a model has a handful of bands per segment): searched linearly.
    pub bands: Vec<BandCount>,
}

impl BacktestState {
    /// Adds one account: its score (None when NULL), its band and rank (None without a score),
    /// and whether it churned within the horizon.
    pub fn add(&mut self, score: Option<f64>, band: Option<(&str, i32)>, churned: bool) -> Result<(), Error> {
        self.accounts += 1;
        self.churned += churned as u64;
        if let Some(score) = score {
            self.auc.add(score, churned)?;
        }
        if let Some((name, rank)) = band {
            let found = self.bands.iter_mut().find(|b| b.rank == rank && b.name == name);
            let count = match found {
                Some(count) => count,
                None => {
                    self.bands.push(BandCount { rank, name: name.to_owned(), accounts: 0, churned: 0 });
                    self.bands.last_mut().expect("just pushed")
                }
            };
            count.accounts += 1;
            count.churned += churned as u64;
        }
        Ok(())
    }

    pub fn combine(&mut self, other: &BacktestState) -> Result<(), Error> {
        self.auc.combine(&other.auc)?;
        self.accounts += other.accounts;
        self.churned += other.churned;
        for b in &other.bands {
            match self.bands.iter_mut().find(|c| c.rank == b.rank && c.name == b.name) {
                Some(c) => {
                    c.accounts += b.accounts;
                    c.churned += b.churned;
                }
                None => self.bands.push(b.clone()),
            }
        }
        Ok(())
    }

    /// `{"accounts", "churned", "auc", "bands": {name: {"band_rank", "accounts", "churned",
    /// "churn_rate"}}}` as JSON text, without `bands` when no account had one. Sorts the state in place.
    pub fn finish(&mut self) -> String {
        self.bands.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.name.cmp(&b.name)));
        let count = |n: u64| Json::Number(n as f64);
        let bands: Vec<(String, Json)> = self
            .bands
            .iter()
            .map(|b| {
                let band = vec![
                    ("band_rank".to_string(), Json::Number(f64::from(b.rank))),
                    ("accounts".to_string(), count(b.accounts)),
                    ("churned".to_string(), count(b.churned)),
                    ("churn_rate".to_string(), Json::Number(b.churned as f64 / b.accounts as f64)),
                ];
                (b.name.clone(), Json::Object(band))
            })
            .collect();
        let auc = self.auc.finish().map_or(Json::Null, Json::Number);
        let mut out = vec![
            ("accounts".to_string(), count(self.accounts)),
            ("churned".to_string(), count(self.churned)),
            ("auc".to_string(), auc),
        ];
        if !bands.is_empty() {
            out.push(("bands".to_string(), Json::Object(bands)));
        }
        Json::Object(out).to_text()
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.accounts.to_le_bytes());
        out.extend_from_slice(&self.churned.to_le_bytes());
        out.extend_from_slice(&(self.bands.len() as u64).to_le_bytes());
        for b in &self.bands {
            out.extend_from_slice(&b.rank.to_le_bytes());
            out.extend_from_slice(&(b.name.len() as u64).to_le_bytes());
            out.extend_from_slice(b.name.as_bytes());
            out.extend_from_slice(&b.accounts.to_le_bytes());
            out.extend_from_slice(&b.churned.to_le_bytes());
        }
        let auc = self.auc.to_bytes()?;
        super::error::reserve(&mut out, auc.len(), "backtest")?;
        out.extend_from_slice(&auc);
        Ok(out)
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<BacktestState> {
        let mut reader = Reader::new(bytes);
        let accounts = reader.u64()?;
        let churned = reader.u64()?;
        let band_count = reader.u64()? as usize;
        let mut bands = Vec::with_capacity(band_count.min(1024));
        for _ in 0..band_count {
            let rank = i32::from_le_bytes(reader.take(4)?.try_into().ok()?);
            let len = reader.u64()? as usize;
            let name = String::from_utf8(reader.take(len)?.to_vec()).ok()?;
            let (accounts, churned) = (reader.u64()?, reader.u64()?);
            bands.push(BandCount { rank, name, accounts, churned });
        }
        let auc = AucState::from_bytes(reader.rest())?;
        Some(BacktestState { accounts, churned, auc, bands })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bands_and_survives_serialization() {
        let mut a = BacktestState::default();
        a.add(Some(80.0), Some(("green", 2)), false).unwrap();
        a.add(Some(20.0), Some(("red", 0)), true).unwrap();
        a.add(None, None, true).unwrap();
        let mut b = BacktestState::default();
        b.add(Some(25.0), Some(("red", 0)), false).unwrap();
        let mut b = BacktestState::from_bytes(&b.to_bytes().unwrap()).unwrap();
        b.combine(&a).unwrap();
        assert_eq!((b.accounts, b.churned), (4, 2));
        let json: serde_json::Value = serde_json::from_str(&b.finish()).unwrap();
        assert_eq!(json["auc"], 1.0);
        assert_eq!(json["bands"]["red"]["accounts"], 2);
        assert_eq!(json["bands"]["red"]["churn_rate"], 0.5);
        assert_eq!(json["bands"]["green"]["band_rank"], 2);
        assert!(BacktestState::from_bytes(&b.to_bytes().unwrap()[..20]).is_none());
    }
}
