/**
 * Membership by certificates (Nebula's CA model), the public face: node
 * certificates, the signed revocation list, and the CA directory that issues
 * both. Other modules import from here, never from the files behind it.
 */
export {
  CLOCK_SKEW_MS,
  MAX_CERTIFICATE_BYTES,
  CertificateInvalidError,
  CertificateMissingError,
  CertificateRequestError,
  PkiWriteError,
  certificateNeedsRenewal,
  certificateSummary,
  certificateValidity,
  encodeCertificate,
  loadCertificate,
  parseCertificate,
  publicKeyOf,
  renewCertificate,
  saveCertificate,
  signCertificate,
  verifyCertificate,
  type CertCheck,
  type Certificate,
  type CertificateBody,
  type CertificateRequest,
  type ParsedCertificate,
  type VerifyCertificateOptions,
} from './cert.js'
export {
  MAX_REVOCATION_LIST_BYTES,
  RevocationListInvalidError,
  encodeRevocationList,
  loadRevocationList,
  parseRevocationList,
  revokedKeys,
  saveRevocationList,
  signRevocationList,
  verifyRevocationList,
  type ParsedRevocationList,
  type RevocationBody,
  type RevocationCheck,
  type RevocationList,
  type RevokedEntry,
} from './revocation.js'
export {
  CA_FILES,
  DEFAULT_CERT_LIFETIME_MS,
  CaExistsError,
  CaInvalidError,
  CaMissingError,
  initCa,
  openCa,
  readCaInfo,
  type Ca,
  type CaInfo,
  type SignRequest,
} from './ca.js'
