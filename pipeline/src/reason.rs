//! Reason and anomaly codes of the report contract (`report-contract.md`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a batch, a request, a piece or a page was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReasonCode {
    PliSansBordereau,
    DemandeSansFiche,
    FicheIllisible,
    NumeroInvalide,
    NumeroInconnu,
    NumeroHorsSne,
    DemandeRadiee,
    IncoherenceIdentite,
    PieceIllisible,
    PiecePartielle,
    HorsPerimetreReglementaire,
    CategoriePleine,
    FichierTropVolumineux,
    FormatNonSupporte,
    FichierCorrompu,
    Doublon,
}

impl ReasonCode {
    /// The value of a stored code (`"PIECE_ILLISIBLE"`), `None` for an unknown one.
    pub fn from_code(code: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(code.to_string())).ok()
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::PliSansBordereau => "PLI_SANS_BORDEREAU",
            Self::DemandeSansFiche => "DEMANDE_SANS_FICHE",
            Self::FicheIllisible => "FICHE_ILLISIBLE",
            Self::NumeroInvalide => "NUMERO_INVALIDE",
            Self::NumeroInconnu => "NUMERO_INCONNU",
            Self::NumeroHorsSne => "NUMERO_HORS_SNE",
            Self::DemandeRadiee => "DEMANDE_RADIEE",
            Self::IncoherenceIdentite => "INCOHERENCE_IDENTITE",
            Self::PieceIllisible => "PIECE_ILLISIBLE",
            Self::PiecePartielle => "PIECE_PARTIELLE",
            Self::HorsPerimetreReglementaire => "HORS_PERIMETRE_REGLEMENTAIRE",
            Self::CategoriePleine => "CATEGORIE_PLEINE",
            Self::FichierTropVolumineux => "FICHIER_TROP_VOLUMINEUX",
            Self::FormatNonSupporte => "FORMAT_NON_SUPPORTE",
            Self::FichierCorrompu => "FICHIER_CORROMPU",
            Self::Doublon => "DOUBLON",
        }
    }

    /// The sentence a notice gives the sender, in French.
    pub fn libelle(self) -> &'static str {
        match self {
            Self::PliSansBordereau => "pli reçu sans bordereau de transmission : pli non conforme",
            Self::DemandeSansFiche => "pièces reçues sans fiche récapitulative de la demande",
            Self::FicheIllisible => "fiche récapitulative illisible ou non conforme",
            Self::NumeroInvalide => "numéro unique invalide",
            Self::NumeroInconnu => "numéro unique inconnu du système national d'enregistrement",
            Self::NumeroHorsSne => "numéro unique d'un territoire non géré par le SNE",
            Self::DemandeRadiee => "demande radiée : aucune pièce ne peut y être ajoutée",
            Self::IncoherenceIdentite => "l'identité indiquée ne correspond pas à la demande",
            Self::PieceIllisible => "pièce illisible",
            Self::PiecePartielle => "pièce incomplète",
            Self::HorsPerimetreReglementaire => "document hors de la liste réglementaire des pièces",
            Self::CategoriePleine => "la demande contient déjà le nombre maximal de pièces de cette catégorie",
            Self::FichierTropVolumineux => "fichier trop volumineux",
            Self::FormatNonSupporte => "format de fichier non pris en charge",
            Self::FichierCorrompu => "fichier endommagé ou illisible",
            Self::Doublon => "pièce déjà reçue",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Something off in a mailing that is reported while processing goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AnomalyCode {
    NbPagesIncoherent,
    NbDocumentsIncoherent,
    NbDossiersIncoherent,
    SlipInvalide,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialise_as_the_contract_spells_them() {
        let all = [ReasonCode::PliSansBordereau, ReasonCode::HorsPerimetreReglementaire, ReasonCode::FichierTropVolumineux, ReasonCode::Doublon];
        for r in all {
            assert_eq!(serde_json::to_string(&r).expect("json"), format!("\"{}\"", r.code()));
        }
        assert_eq!(serde_json::to_string(&AnomalyCode::NbPagesIncoherent).expect("json"), "\"NB_PAGES_INCOHERENT\"");
    }
}
