#!/usr/bin/env node
// A Storage Commitment SCU for the tests, built on dcmjs-dimse (a DIMSE implementation we did
// not write: tests/support/node, installed by tools/install-deps.sh --test).
//
//   commit_scu.js request --host H --port P --calling AE --called AE --tuid UID --refs FILE
//                         [--linger MS] [--action-type N] [--instance UID]
//     sends one N-ACTION-RQ (refs: one "SOPClassUID SOPInstanceUID" pair a line) and keeps the
//     association open for --linger ms to take an N-EVENT-REPORT on it; prints JSON lines:
//     {"ev":"n_action_rsp","status":N} and {"ev":"report","path":"same",...}
//   commit_scu.js listen --port P --ae AE --out FILE [--refuse N]
//     an SCP for reports on new associations (the gateway proposes the SCP role for itself);
//     appends one JSON line per N-EVENT-REPORT to FILE; the first N associations are rejected
//     (a modality that is unreachable for a while). Runs until killed.
'use strict';
const fs = require('fs');
const path = require('path');
const dimse = require(path.join(__dirname, 'node', 'node_modules', 'dcmjs-dimse'));
const { Client, Server, Scp, Dataset } = dimse;
dimse.log.setLevel(process.env.COMMIT_SCU_LOG || 'error'); /* stdout carries only our JSON */
const { NActionRequest } = dimse.requests;
const { NEventReportResponse } = dimse.responses;
const { Status, PresentationContextResult, RejectResult, RejectSource, RejectReason, SopClass,
        TransferSyntax } = dimse.constants;

const SC = '1.2.840.10008.1.20.1';
const SC_INSTANCE = '1.2.840.10008.1.20.1.1';

function args(argv) {
  const o = { _: argv[0] };
  for (let i = 1; i < argv.length; i += 2) o[argv[i].replace(/^--/, '')] = argv[i + 1];
  return o;
}

function list(seq) {
  if (!seq) return [];
  return Array.isArray(seq) ? seq : [seq];
}

function summarize(request, pathName) {
  const ds = request.getDataset();
  const e = ds ? ds.getElements() : {};
  return {
    ev: 'report',
    path: pathName,
    event_type: request.getEventTypeId(),
    sop_class: request.getAffectedSopClassUid ? request.getAffectedSopClassUid() : undefined,
    sop_instance: request.getAffectedSopInstanceUid ? request.getAffectedSopInstanceUid() : undefined,
    transaction_uid: e.TransactionUID,
    referenced: list(e.ReferencedSOPSequence).map((i) => i.ReferencedSOPInstanceUID),
    failed: list(e.FailedSOPSequence).map((i) => [i.ReferencedSOPInstanceUID, i.FailureReason]),
    at_ms: Date.now(),
  };
}

function out(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function request(o) {
  const refs = fs.readFileSync(o.refs, 'utf8').split('\n').filter((l) => l.trim())
    .map((l) => l.trim().split(/\s+/))
    .map(([c, i]) => ({ ReferencedSOPClassUID: c, ReferencedSOPInstanceUID: i }));
  const rq = new NActionRequest(SC, o.instance || SC_INSTANCE, Number(o['action-type'] || 1));
  const ds = { ReferencedSOPSequence: refs };
  if (o.tuid !== '-') ds.TransactionUID = o.tuid;
  rq.setDataset(new Dataset(ds));
  rq.on('response', (r) => out({ ev: 'n_action_rsp', status: r.getStatus(), at_ms: Date.now() }));
  const client = new Client();
  client.addRequest(rq);
  client.on('nEventReportRequest', (req, cb) => {
    out(summarize(req, 'same'));
    const rsp = NEventReportResponse.fromRequest(req);
    rsp.setStatus(Status.Success);
    cb(rsp);
  });
  client.on('networkError', (e) => out({ ev: 'network_error', msg: String(e) }));
  client.on('associationRejected', (r) => out({ ev: 'rejected', reason: r }));
  client.on('associationReleased', () => out({ ev: 'released' }));
  client.send(o.host, Number(o.port), o.calling, o.called, {
    associationLingerTimeout: Number(o.linger || 0),
    associationTimeout: Number(o.linger || 0) + 30000,
    pduTimeout: Number(o.linger || 0) + 30000,
  });
}

function listen(o) {
  let refuse = Number(o.refuse || 0);
  const file = o.out;
  class ReportScp extends Scp {
    associationRequested(a) {
      if (refuse > 0) {
        refuse--;
        fs.appendFileSync(file, JSON.stringify({ ev: 'refused', at_ms: Date.now() }) + '\n');
        this.sendAssociationReject(RejectResult.Transient, RejectSource.ServiceUser,
                                   RejectReason.NoReasonGiven);
        return;
      }
      if (o.ae && a.getCalledAeTitle() !== o.ae) {
        this.sendAssociationReject(RejectResult.Permanent, RejectSource.ServiceUser,
                                   RejectReason.CalledAeNotRecognized);
        return;
      }
      a.getPresentationContexts().forEach((c) => {
        const ctx = a.getPresentationContext(c.id);
        if (ctx.getAbstractSyntaxUid() === SC) {
          const ts = ctx.getTransferSyntaxUids().find((t) =>
            t === TransferSyntax.ExplicitVRLittleEndian || t === TransferSyntax.ImplicitVRLittleEndian);
          ctx.setResult(ts ? PresentationContextResult.Accept :
            PresentationContextResult.RejectTransferSyntaxesNotSupported, ts);
        } else {
          ctx.setResult(PresentationContextResult.RejectAbstractSyntaxNotSupported);
        }
      });
      this.sendAssociationAccept();
    }
    nEventReportRequest(req, cb) {
      const s = summarize(req, 'new');
      s.calling_ae = this.association ? this.association.getCallingAeTitle() : undefined;
      fs.appendFileSync(file, JSON.stringify(s) + '\n');
      const rsp = NEventReportResponse.fromRequest(req);
      rsp.setStatus(Status.Success);
      cb(rsp);
    }
    associationReleaseRequested() {
      this.sendAssociationReleaseResponse();
    }
  }
  const server = new Server(ReportScp);
  server.on('networkError', (e) => fs.appendFileSync(file,
    JSON.stringify({ ev: 'network_error', msg: String(e) }) + '\n'));
  server.listen(Number(o.port));
  fs.appendFileSync(file, JSON.stringify({ ev: 'listening', port: Number(o.port) }) + '\n');
}

const o = args(process.argv.slice(2));
if (o._ === 'request') request(o);
else if (o._ === 'listen') listen(o);
else {
  process.stderr.write('usage: commit_scu.js request|listen ...\n');
  process.exit(2);
}
