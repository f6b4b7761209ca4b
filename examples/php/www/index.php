<?php
// An ordinary PHP page: it knows nothing of sessionproxy. The adapter
// (auto_prepend_file) puts $_SESSION on the proxy's session, which both
// PHP-FPM pools share.
session_start();
$action = $_GET['action'] ?? '';
if ($action === 'login' && ($_POST['user'] ?? '') !== '') {
    session_regenerate_id(true);          // a new session ID at login
    $_SESSION['user'] = $_POST['user'];
} elseif ($action === 'logout') {
    session_destroy();
    header('Location: /');
    exit;
}
$_SESSION['visits'] = ($_SESSION['visits'] ?? 0) + 1;
$_SESSION['history'][] = date('H:i:s');
$_SESSION['history'] = array_slice($_SESSION['history'], -5);
$h = fn ($s) => htmlspecialchars((string) $s, ENT_QUOTES);
?>
<!doctype html>
<title>sessionproxy + PHP-FPM</title>
<h1>Served by PHP-FPM pool <?= $h(getenv('POOL') ?: '?') ?></h1>
<p>Session <code><?= $h(session_id()) ?></code>, visit <?= $h($_SESSION['visits']) ?>
 (last visits: <?= $h(implode(', ', $_SESSION['history'])) ?>).</p>
<?php if (isset($_SESSION['user'])): ?>
<p>Logged in as <b><?= $h($_SESSION['user']) ?></b>. <a href="/?action=logout">Log out</a></p>
<?php else: ?>
<form method="post" action="/?action=login">Name <input name="user" value="José 🙂"> <button>Log in</button></form>
<?php endif ?>
<p>Reload: the pool changes (round robin), the session does not.</p>
