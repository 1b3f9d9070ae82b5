package recording

// AuditAction is what an audit_log row says was done. One set, so a search by action
// (GET /api/audit?action=) can list the words it accepts and no writer invents a spelling.
type AuditAction string

const (
	AuditLogin                 AuditAction = "login"
	AuditLoginFailed           AuditAction = "login.failed"
	AuditRefreshReused         AuditAction = "refresh.reused"
	AuditLogout                AuditAction = "logout"
	AuditPasswordChange        AuditAction = "password.change"
	AuditPasswordChangeFailed  AuditAction = "password.change_failed"
	AuditPasswordResetAsked    AuditAction = "password.reset_requested"
	AuditPasswordReset         AuditAction = "password.reset"
	AuditUserInvite            AuditAction = "user.invite"
	AuditUserUpdate            AuditAction = "user.update"
	AuditUserNotificationPrefs AuditAction = "user.notification_prefs"
	AuditDeviceTokenSet        AuditAction = "device.token.set"
	AuditDeviceTokenDelete     AuditAction = "device.token.delete"
	AuditDeviceUpdate          AuditAction = "device.update"
	AuditDeviceApprove         AuditAction = "device.approve"
	AuditDeviceReject          AuditAction = "device.reject"
	AuditDeviceRetire          AuditAction = "device.retire"
	AuditDeviceDelete          AuditAction = "device.delete"
	AuditDeviceWrongAddress    AuditAction = "device.heartbeat.wrong_address" // someone else may speak for it
	AuditSessionCreate         AuditAction = "session.create"
	AuditSessionCancel         AuditAction = "session.cancel"
	AuditSessionArchive        AuditAction = "session.archive"
	AuditSessionUnarchive      AuditAction = "session.unarchive"
	AuditSessionRemoveDevice   AuditAction = "session.remove_device"
	AuditSessionAddDevices     AuditAction = "session.add_devices"
	AuditSessionRetryDevice    AuditAction = "session.retry_device"
	AuditSessionDuration       AuditAction = "session.duration"
	AuditSessionEdit           AuditAction = "session.edit"
	AuditUploadRefusedVerified AuditAction = "upload.refused_verified" // other bytes under a verified name
	AuditAlertAcknowledge      AuditAction = "alert.acknowledge"
	AuditAlertSilence          AuditAction = "alert.silence"
	AuditScheduleCreate        AuditAction = "schedule.create"
	AuditScheduleUpdate        AuditAction = "schedule.update"
	AuditSchedulePause         AuditAction = "schedule.pause"
	AuditScheduleResume        AuditAction = "schedule.resume"
	AuditScheduleTrigger       AuditAction = "schedule.trigger"
	AuditScheduleDelete        AuditAction = "schedule.delete"
	AuditSessionSubject        AuditAction = "session.subject" // an enclosure's subject edited
	AuditTemplateCreate        AuditAction = "template.create"
	AuditTemplateVersion       AuditAction = "template.version" // an edit: the template's next version
	AuditTemplateArchive       AuditAction = "template.archive"
)

// AuditActions lists every action, for validating filters.
var AuditActions = []AuditAction{AuditLogin, AuditLoginFailed, AuditRefreshReused, AuditLogout,
	AuditPasswordChange, AuditPasswordChangeFailed, AuditPasswordResetAsked, AuditPasswordReset,
	AuditUserInvite, AuditUserUpdate, AuditUserNotificationPrefs, AuditDeviceTokenSet, AuditDeviceTokenDelete, AuditDeviceUpdate,
	AuditDeviceApprove, AuditDeviceReject, AuditDeviceRetire, AuditDeviceDelete, AuditDeviceWrongAddress,
	AuditSessionCreate, AuditSessionCancel, AuditSessionArchive, AuditSessionUnarchive,
	AuditSessionRemoveDevice, AuditSessionAddDevices, AuditSessionRetryDevice, AuditSessionDuration, AuditSessionEdit,
	AuditUploadRefusedVerified, AuditAlertAcknowledge, AuditAlertSilence,
	AuditScheduleCreate, AuditScheduleUpdate, AuditSchedulePause, AuditScheduleResume, AuditScheduleTrigger, AuditScheduleDelete,
	AuditSessionSubject, AuditTemplateCreate, AuditTemplateVersion, AuditTemplateArchive}
