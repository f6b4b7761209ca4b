<?php
// A session as large as asked: over the proxy's max_size, the write fails
// with PHP's own warning ("Failed to write session data") and the session
// stays as it was.
session_start();
$_SESSION['big'] = str_repeat('x', (int) ($_GET['n'] ?? 0));
header('Content-Type: application/json');
echo json_encode(['sid' => session_id()]);
