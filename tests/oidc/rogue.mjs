// A test-only OpenID provider that is wrong on purpose, for the refusals a real provider never
// produces (tests/it/oidc.rs). It publishes a discovery document and one signing key like any
// issuer, signs every authorisation request in at once, and answers the code exchange with an
// ID token that is faulty in one way, chosen by MODE:
//   good            nothing wrong (the control: rrct accepts it)
//   wrong-issuer    `iss` is another issuer
//   wrong-audience  `aud` is another client
//   bad-signature   signed with a key the issuer never published (under the published key's id)
//   expired         `exp` an hour ago
//   wrong-nonce     `nonce` is not the one rrct sent
// Usage: node rogue.mjs MODE CLIENT_ID; prints `issuer http://127.0.0.1:PORT`. `GET /mode/MODE`
// switches the mode of the tokens issued from then on.
// No dependencies: node's own crypto signs RS256.
import http from 'node:http';
import crypto from 'node:crypto';

let [mode, clientId] = process.argv.slice(2);
const published = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const unpublished = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const kid = 'rogue-1';
const codes = new Map();
const b64 = (data) => Buffer.from(data).toString('base64url');

function idToken(issuer, nonce, account) {
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    iss: mode === 'wrong-issuer' ? 'http://issuer.invalid' : issuer,
    aud: mode === 'wrong-audience' ? 'another-client' : clientId,
    sub: account.sub,
    name: account.name,
    groups: account.groups,
    iat: mode === 'expired' ? now - 7200 : now,
    exp: mode === 'expired' ? now - 3600 : now + 300,
    nonce: mode === 'wrong-nonce' ? 'not-the-nonce' : nonce,
  };
  const input = `${b64(JSON.stringify({ alg: 'RS256', typ: 'JWT', kid }))}.${b64(JSON.stringify(claims))}`;
  const key = mode === 'bad-signature' ? unpublished.privateKey : published.privateKey;
  return `${input}.${b64(crypto.sign('sha256', Buffer.from(input), key))}`;
}

const server = http.createServer((req, res) => {
  const issuer = `http://127.0.0.1:${server.address().port}`;
  const url = new URL(req.url, issuer);
  const json = (status, body) => {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  if (url.pathname === '/.well-known/openid-configuration') {
    return json(200, {
      issuer,
      authorization_endpoint: `${issuer}/auth`,
      token_endpoint: `${issuer}/token`,
      jwks_uri: `${issuer}/jwks`,
      response_types_supported: ['code'],
      subject_types_supported: ['public'],
      id_token_signing_alg_values_supported: ['RS256'],
      code_challenge_methods_supported: ['S256'],
    });
  }
  if (url.pathname.startsWith('/mode/')) {
    mode = url.pathname.slice('/mode/'.length);
    res.writeHead(204);
    return res.end();
  }
  if (url.pathname === '/jwks') {
    const jwk = published.publicKey.export({ format: 'jwk' });
    return json(200, { keys: [{ ...jwk, kid, alg: 'RS256', use: 'sig' }] });
  }
  if (url.pathname === '/auth') {
    const code = crypto.randomBytes(16).toString('hex');
    codes.set(code, url.searchParams.get('nonce'));
    const back = new URL(url.searchParams.get('redirect_uri'));
    back.searchParams.set('code', code);
    back.searchParams.set('state', url.searchParams.get('state'));
    res.writeHead(302, { location: back.toString() });
    return res.end();
  }
  if (url.pathname === '/token' && req.method === 'POST') {
    let body = '';
    req.on('data', (chunk) => { body += chunk; });
    req.on('end', () => {
      const code = new URLSearchParams(body).get('code');
      if (!codes.has(code)) return json(400, { error: 'invalid_grant' });
      const nonce = codes.get(code);
      codes.delete(code);
      json(200, {
        access_token: crypto.randomBytes(16).toString('hex'),
        token_type: 'Bearer',
        expires_in: 300,
        id_token: idToken(issuer, nonce, { sub: 'rogue-subject', name: 'Rogue Person', groups: ['rrct-dsmb-taste'] }),
      });
    });
    return undefined;
  }
  res.writeHead(404);
  return res.end();
});
server.listen(0, '127.0.0.1', () => console.log(`issuer http://127.0.0.1:${server.address().port}`));
