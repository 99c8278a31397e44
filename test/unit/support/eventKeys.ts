/**
 * Event keys for the unit tests of authenticated replication: a fresh Ed25519 pair for `us` (key
 * us-1) and `eu` (eu-1), and the keyring every region would hold (each region's public key by id).
 */
import {
  generateSigningKeyPair,
  publicKeyFromPem,
  type PublicKeyring,
} from '../../../shared/security/eventSignature.js';

export const us = generateSigningKeyPair('us-1');
export const eu = generateSigningKeyPair('eu-1');
export const keyring: PublicKeyring = new Map([
  ['us', new Map([['us-1', publicKeyFromPem(us.publicKeyPem)]])],
  ['eu', new Map([['eu-1', publicKeyFromPem(eu.publicKeyPem)]])],
]);
